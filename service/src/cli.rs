//! A small client in the server's binary, so a person can poke a running
//! server without other tools. Output is one JSON object per document.

use clap::Args;
use settings_sync_client::{Client, LocalDocument};
use settings_sync_protocol::{
    Clock, Document, DocumentKey, Stamp, Value, ValueLimits, Versioned, WriterId,
};

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
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
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

pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let key = DocumentKey::parse(&args.tenant, &args.owner, &args.name)?;
    let mut client = args.server.connect().await?;
    match client.get(&key).await? {
        Some(document) => println!("{}", document_json(&document)),
        None => anyhow::bail!("document {key} not found"),
    }
    Ok(())
}

pub async fn put(args: PutArgs) -> anyhow::Result<()> {
    let key = DocumentKey::parse(&args.tenant, &args.owner, &args.name)?;
    let value = Value::parse(
        &args.value,
        ValueLimits {
            max_bytes: usize::MAX,
            max_depth: usize::MAX,
        },
    )?;
    let mut client = args.server.connect().await?;
    let write = match (args.clock, args.writer) {
        (Some(clock), Some(writer)) => Versioned {
            value,
            stamp: Stamp::new(Clock::new(clock)?, WriterId::parse(writer)?),
        },
        _ => {
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

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
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

fn document_json(document: &Document) -> serde_json::Value {
    let updated_at: chrono::DateTime<chrono::Utc> = document.updated_at.into();
    serde_json::json!({
        "key": document.key.to_string(),
        "value": document.state.value.to_json(),
        "stamp": { "clock": document.state.stamp.clock.get(), "writer": document.state.stamp.writer.as_str() },
        "revision": document.revision,
        "updated_at": updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}
