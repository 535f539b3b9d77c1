//! A small client in the server's binary, so a person can poke a running
//! server without other tools. Output is one JSON object per line, per
//! document; failures are one line on stderr with an exit code per kind
//! ([`exit`]).

pub mod exit;
pub mod health;
pub mod patch;
pub mod watch;

use clap::Args;
use settings_sync_client::{Client, LocalDocument};
use settings_sync_protocol::fields::FieldDocument;
use settings_sync_protocol::{
    Clock, Document, DocumentKey, Stamp, Value, ValueLimits, Versioned, WriterId,
};

pub use exit::{CliError, EXIT_CODES, Exit};
pub use health::{HealthArgs, health};
pub use patch::{PatchArgs, patch};
pub use watch::{WatchArgs, watch};

#[derive(Debug, Clone, Args)]
pub struct ServerArg {
    /// The server to talk to.
    #[arg(
        long,
        env = "SETTINGS_SYNC_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// A file holding a bearer token to send. Without it, the token in
    /// SETTINGS_SYNC_TOKEN, if set. (No --token flag: command lines show up
    /// in `ps`.)
    #[arg(long, env = "SETTINGS_SYNC_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

impl ServerArg {
    /// A client for `--server`, sending the configured token if any.
    pub async fn connect(&self) -> Result<Client, CliError> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| CliError::usage(format!("reading {}: {e}", path.display())))?,
            ),
            None => std::env::var("SETTINGS_SYNC_TOKEN").ok(),
        };
        let client = Client::connect(self.server.clone()).await?;
        match token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => Ok(client.with_token(token)?),
            None => Ok(client),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    pub owner: String,
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    pub owner: String,
    pub name: String,
    /// A JSON object, or `null` to delete.
    pub value: String,
    #[command(flatten)]
    pub stamp: StampArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    pub owner: String,
    pub name: String,
    #[command(flatten)]
    pub stamp: StampArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StampArgs {
    /// Send this exact stamp instead of acting as a fresh client (which
    /// reads the document first and ticks past its clock). Needs --writer.
    #[arg(long, requires = "writer")]
    pub clock: Option<u64>,
    #[arg(long, requires = "clock")]
    pub writer: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    pub name: String,
    /// A JSON object the values must contain, e.g. '{"airports":["SEA"]}'.
    #[arg(default_value = "{}")]
    pub contains: String,
    #[arg(long, default_value_t = 100)]
    pub page_size: i32,
}

pub async fn get(args: GetArgs) -> Result<(), CliError> {
    let key = parse_key(&args.tenant, &args.owner, &args.name)?;
    let mut client = args.server.connect().await?;
    match client.get(&key).await? {
        Some(document) => println!("{}", document_json(&document)),
        None => return Err(CliError::NotFound(key)),
    }
    Ok(())
}

pub async fn put(args: PutArgs) -> Result<(), CliError> {
    let key = parse_key(&args.tenant, &args.owner, &args.name)?;
    // The server enforces its limits; the CLI only checks the syntax.
    let unlimited = ValueLimits {
        max_bytes: usize::MAX,
        max_depth: usize::MAX,
    };
    let value = Value::parse(&args.value, unlimited).map_err(CliError::usage)?;
    write(&args.server, key, value, args.stamp).await
}

/// A tombstone, stamped like any write, so it merges like one.
pub async fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let key = parse_key(&args.tenant, &args.owner, &args.name)?;
    write(&args.server, key, Value::TOMBSTONE, args.stamp).await
}

async fn write(
    server: &ServerArg,
    key: DocumentKey,
    value: Value,
    stamp: StampArgs,
) -> Result<(), CliError> {
    let given = match (stamp.clock, stamp.writer) {
        (Some(clock), Some(writer)) => Some(Stamp::new(
            Clock::new(clock).map_err(CliError::usage)?,
            WriterId::parse(writer).map_err(CliError::usage)?,
        )),
        _ => None,
    };
    let mut client = server.connect().await?;
    let write = match given {
        Some(stamp) => Versioned { value, stamp },
        None => {
            // A fresh client: learn the stored clock, then edit past it.
            let mut local = LocalDocument::new(key.clone());
            local.sync(&mut client).await?;
            local.edit(value)
        }
    };
    let reply = client.sync(&key, &write).await?;
    let mut out = document_json(&reply.document);
    out["decision"] = reply.decision.as_str().into();
    println!("{out}");
    Ok(())
}

fn parse_key(tenant: &str, owner: &str, name: &str) -> Result<DocumentKey, CliError> {
    DocumentKey::parse(tenant, owner, name).map_err(CliError::usage)
}

#[derive(Debug, Clone, Args)]
pub struct OverridesArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    pub owner: String,
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct ReapplyArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    pub owner: String,
    pub name: String,
    /// The override's id, as `settings-sync overrides` prints it.
    pub id: i64,
}

/// Prints a document's override log, newest first, one JSON line each.
pub async fn overrides(args: OverridesArgs) -> Result<(), CliError> {
    let key = parse_key(&args.tenant, &args.owner, &args.name)?;
    let mut client = args.server.connect().await?;
    let mut token = None;
    loop {
        let page = client.list_overrides(&key, 100, token).await?;
        for o in &page.overrides {
            println!("{}", override_json(o));
        }
        token = page.next_page_token;
        if token.is_none() {
            return Ok(());
        }
    }
}

/// Writes an overridden value again under a fresh stamp and prints the
/// outcome, as `put` does.
pub async fn reapply(args: ReapplyArgs) -> Result<(), CliError> {
    let key = parse_key(&args.tenant, &args.owner, &args.name)?;
    let mut client = args.server.connect().await?;
    let mut token = None;
    let found = loop {
        let page = client.list_overrides(&key, 100, token).await?;
        if let Some(o) = page.overrides.into_iter().find(|o| o.id == args.id) {
            break o;
        }
        token = page.next_page_token;
        if token.is_none() {
            return Err(CliError::OverrideNotFound { key, id: args.id });
        }
    };
    let reply = client.reapply(&key, &found).await?;
    let mut out = document_json(&reply.document);
    out["decision"] = reply.decision.as_str().into();
    println!("{out}");
    Ok(())
}

pub(crate) fn override_json(o: &settings_sync_protocol::overrides::Override) -> serde_json::Value {
    let recorded_at: chrono::DateTime<chrono::Utc> = o.recorded_at.into();
    let stamp =
        |s: &Stamp| serde_json::json!({ "clock": s.clock.get(), "writer": s.writer.as_str() });
    let value = (o.lost.value.as_deref())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": o.id,
        "field": o.lost.field,
        "lost_value": value,
        "lost_stamp": stamp(&o.lost.stamp),
        "winner_stamp": stamp(&o.lost.winner),
        "kind": o.lost.kind.as_str(),
        "recorded_at": recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

pub async fn query(args: QueryArgs) -> Result<(), CliError> {
    let mut client = args.server.connect().await?;
    let mut token = None;
    loop {
        let page = client
            .query(
                &args.tenant,
                &args.name,
                &args.contains,
                args.page_size,
                token,
            )
            .await?;
        for document in &page.documents {
            println!("{}", document_json(document));
        }
        token = page.next_page_token;
        if token.is_none() {
            return Ok(());
        }
    }
}

pub(crate) fn document_json(document: &Document) -> serde_json::Value {
    let updated_at: chrono::DateTime<chrono::Utc> = document.updated_at.into();
    let mut out = serde_json::json!({
        "key": document.key.to_string(),
        "value": document.state.value.to_json(),
        "stamp": { "clock": document.state.stamp.clock.get(), "writer": document.state.stamp.writer.as_str() },
        "revision": document.revision,
        "updated_at": updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(fields) = &document.fields {
        add_registers(&mut out, fields);
    }
    out
}

/// A field-merged document's registers: `floor`, the last whole-document
/// write (`null` if none), and `field_stamps`, each listed field's stamp;
/// `"deleted": true` marks a field tombstone, or a floor that deleted the
/// document.
fn add_registers(out: &mut serde_json::Value, fields: &FieldDocument) {
    let register = |s: &Stamp, deleted: bool| {
        let mut json = serde_json::json!({ "clock": s.clock.get(), "writer": s.writer.as_str() });
        if deleted {
            json["deleted"] = true.into();
        }
        json
    };
    out["floor"] = (fields.floor())
        .map(|floor| register(&floor.stamp, floor.deleted))
        .into();
    out["field_stamps"] = (fields.entries())
        .map(|(name, entry)| {
            (
                name.to_owned(),
                register(&entry.stamp, entry.value.is_none()),
            )
        })
        .collect::<serde_json::Map<String, serde_json::Value>>()
        .into();
}
