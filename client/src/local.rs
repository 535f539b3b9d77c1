//! A local copy of one document: the client half of the protocol.

use rand::Rng;
use settings_sync_protocol::{
    Decision, Document, DocumentKey, Replica, Value, Versioned, WriterId,
};

use crate::{Client, Error};

/// Holds what the user sees, edits it optimistically, and syncs with the
/// backend by the adopt rule: a response replaces the local value only if
/// its stamp is larger, so a late answer never undoes a newer click.
#[derive(Clone, Debug)]
pub struct LocalDocument {
    key: DocumentKey,
    replica: Replica,
}

impl LocalDocument {
    /// A new incarnation with a fresh random writer id.
    pub fn new(key: DocumentKey) -> Self {
        LocalDocument {
            key,
            replica: Replica::new(fresh_writer_id()),
        }
    }

    /// A new incarnation with a chosen writer id. The id must never have
    /// been used before for this document, or writes may be rejected.
    pub fn with_writer(key: DocumentKey, writer: WriterId) -> Self {
        LocalDocument {
            key,
            replica: Replica::new(writer),
        }
    }

    pub fn key(&self) -> &DocumentKey {
        &self.key
    }

    pub fn writer(&self) -> &WriterId {
        self.replica.writer()
    }

    /// What the user sees now (`None` before anything was made or seen).
    pub fn current(&self) -> Option<&Versioned> {
        self.replica.current()
    }

    pub fn value(&self) -> Option<&Value> {
        self.current().map(|c| &c.value)
    }

    /// Forgets everything, as a browser reload does, and takes a fresh
    /// writer id so the new incarnation never reuses a stamp.
    pub fn reset(&mut self) {
        self.replica = Replica::new(fresh_writer_id());
    }

    /// A local edit, visible at once. Returns the write; `sync` sends it.
    pub fn edit(&mut self, value: Value) -> Versioned {
        self.replica.edit(value)
    }

    /// Applies a document received from the backend (a response, a watch
    /// event). Returns whether the local value changed.
    pub fn observe(&mut self, document: &Document) -> bool {
        self.replica.observe(&document.state)
    }

    /// Sends the local state and adopts the answer. With nothing local yet,
    /// reads the stored document instead. Returns the decision of the write,
    /// if one was sent.
    pub async fn sync(&mut self, client: &mut Client) -> Result<Option<Decision>, Error> {
        match self.replica.current().cloned() {
            Some(write) => {
                let reply = client.sync(&self.key, &write).await?;
                self.observe(&reply.document);
                Ok(Some(reply.decision))
            }
            None => {
                if let Some(document) = client.get(&self.key).await? {
                    self.observe(&document);
                }
                Ok(None)
            }
        }
    }
}

pub(crate) fn fresh_writer_id() -> WriterId {
    let id = format!("w-{:032x}", rand::rng().random::<u128>());
    WriterId::parse(id).expect("a hex id is a valid writer id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_incarnation_gets_a_fresh_writer_id() {
        let key = DocumentKey::parse("t", "o", "n").unwrap();
        let mut doc = LocalDocument::new(key.clone());
        let first = doc.writer().clone();
        doc.reset();
        assert_ne!(&first, doc.writer());
        assert_ne!(LocalDocument::new(key).writer(), &first);
    }

    #[test]
    fn a_reset_forgets_the_local_state() {
        let mut doc = LocalDocument::new(DocumentKey::parse("t", "o", "n").unwrap());
        doc.edit(Value::TOMBSTONE);
        doc.reset();
        assert!(doc.current().is_none());
    }
}
