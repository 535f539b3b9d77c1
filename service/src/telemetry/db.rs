//! CLIENT spans for SQL statements, children of the RPC that runs them.
//!
//! The span carries the statement's constant text, never its bound values:
//! those are documents and owner ids. Statements outside an RPC (health
//! pings, change-feed polls, compaction) get no span, or every replica
//! would emit a trace per poll.

use tracing::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbSystem {
    Postgresql,
    Sqlite,
}

impl DbSystem {
    /// The `db.system.name` of the OpenTelemetry conventions.
    pub fn name(self) -> &'static str {
        match self {
            DbSystem::Postgresql => "postgresql",
            DbSystem::Sqlite => "sqlite",
        }
    }

    /// A span for one statement. `summary` is "OPERATION table", e.g.
    /// `"INSERT documents"`; it names the span. Instrument the statement's
    /// future with it: `.instrument(DbSystem::Sqlite.statement(...))`.
    pub fn statement(self, summary: &'static str, text: &'static str) -> Span {
        if Span::current().is_none() {
            return Span::none();
        }
        let (operation, collection) = summary.split_once(' ').unwrap_or((summary, ""));
        tracing::info_span!(
            "db",
            otel.name = summary,
            otel.kind = "client",
            db.system.name = self.name(),
            db.operation.name = operation,
            db.collection.name = collection,
            db.query.summary = summary,
            db.query.text = %OneLine(text),
        )
    }
}

/// SQL text with its layout collapsed to single spaces, for one-line display.
struct OneLine(&'static str);

impl std::fmt::Display for OneLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, word) in self.0.split_whitespace().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(word)?;
        }
        Ok(())
    }
}
