//! Watch streams that record what they see, for comparing replicas.

use std::time::Duration;

use settings_sync_client::Client;
use settings_sync_proto::v1::watch_response::Event;
use settings_sync_proto::v1::{WatchRequest, WatchResponse};
use settings_sync_protocol::Document;
use tokio::task::JoinHandle;
use tonic::Streaming;

/// A watcher of tenant `acme` from the beginning of its history.
pub struct Recorder {
    task: JoinHandle<Vec<Document>>,
    until: tokio::sync::watch::Sender<i64>,
}

impl Recorder {
    pub async fn start(endpoint: &str) -> Recorder {
        let mut client = Client::connect(endpoint.to_string())
            .await
            .expect("connecting a watcher");
        let request = WatchRequest {
            tenant: "acme".into(),
            owner: String::new(),
            name: String::new(),
            after_revision: Some(0),
        };
        let stream = client
            .raw()
            .watch(request)
            .await
            .expect("opening a watch")
            .into_inner();
        let (until, stop_at) = tokio::sync::watch::channel(i64::MAX);
        Recorder {
            task: tokio::spawn(record(stream, stop_at)),
            until,
        }
    }

    /// Everything seen up to `revision`, waiting at most `patience`.
    pub async fn finish(self, revision: i64, patience: Duration) -> Vec<Document> {
        self.until.send_replace(revision);
        tokio::time::timeout(patience, self.task)
            .await
            .expect("the watcher caught up in time")
            .expect("the watcher")
    }
}

async fn record(
    mut stream: Streaming<WatchResponse>,
    mut stop_at: tokio::sync::watch::Receiver<i64>,
) -> Vec<Document> {
    let mut seen = Vec::new();
    let mut position = 0;
    while position < *stop_at.borrow_and_update() {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = stop_at.changed() => continue,
        };
        let Ok(Some(message)) = message else { break };
        match message.event {
            Some(Event::Change(document)) => {
                let document = Document::try_from(document).expect("a valid change");
                position = document.revision;
                seen.push(document);
            }
            Some(Event::Progress(progress)) => position = position.max(progress.revision),
            None => {}
        }
    }
    seen
}
