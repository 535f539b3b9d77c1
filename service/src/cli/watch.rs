//! `settings-sync watch`: follows a tenant's (or one owner's) changes,
//! one JSON line per change on stdout, progress on stderr.

use clap::Args;
use settings_sync_proto::v1;
use settings_sync_proto::v1::watch_response::Event;
use settings_sync_protocol::Document;

use super::{CliError, ServerArg, document_json};

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub server: ServerArg,
    pub tenant: String,
    /// Only this owner's documents.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only documents of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Start after this revision (the last one printed, to resume); without
    /// it, only changes from now on.
    #[arg(long)]
    pub after_revision: Option<i64>,
}

pub async fn watch(args: WatchArgs) -> Result<(), CliError> {
    let mut client = args.server.connect().await?;
    let request = v1::WatchRequest {
        tenant: args.tenant,
        owner: args.owner.unwrap_or_default(),
        name: args.name.unwrap_or_default(),
        after_revision: args.after_revision,
    };
    let mut stream = client.raw().watch(request).await?.into_inner();
    let mut position = args.after_revision;
    let mut caught_up = false;
    loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return Err(CliError::WatchEnded(position.unwrap_or(0))),
            Err(status) => return Err(ended(status.into(), position)),
        };
        match message.event {
            Some(Event::Change(document)) => {
                let document = Document::try_from(document)
                    .map_err(|e| ended(settings_sync_client::Error::from(e), position))?;
                position = Some(document.revision);
                println!("{}", document_json(&document));
            }
            Some(Event::Progress(progress)) => {
                position = Some(progress.revision);
                if caught_up {
                    eprintln!("current at revision {}", progress.revision);
                } else {
                    caught_up = true;
                    eprintln!("caught up at revision {}; following", progress.revision);
                }
            }
            None => {}
        }
    }
}

/// The stream's end, with where to resume when resuming can help: after
/// falling behind or losing the server, not after a refusal.
fn ended(error: settings_sync_client::Error, position: Option<i64>) -> CliError {
    use tonic::Code;
    let transient = matches!(
        error.code(),
        Some(Code::ResourceExhausted | Code::Unavailable | Code::Unknown | Code::Cancelled)
    );
    match position {
        Some(resume_after) if transient => CliError::WatchFailed {
            error,
            resume_after,
        },
        _ => CliError::Client(error),
    }
}
