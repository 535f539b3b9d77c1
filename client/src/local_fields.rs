//! A local copy of one document in the opt-in per-field mode: the client
//! half of `docs/protocol.md`, "Per-field merge", over
//! [`FieldReplica`]: edits of named fields under one stamp each, the
//! per-field adopt rule, and every own write kept, exactly as made, until
//! the backend is seen to hold it.

use settings_sync_protocol::fields::{Change, FieldDocument, FieldReplica, FieldWrite, Patch};
use settings_sync_protocol::{Decision, Document, DocumentKey, WriterId};

use crate::local::fresh_writer_id;
use crate::{Client, Error};

#[derive(Clone, Debug)]
pub struct LocalFieldDocument {
    key: DocumentKey,
    replica: FieldReplica,
}

impl LocalFieldDocument {
    /// A new incarnation with a fresh random writer id.
    pub fn new(key: DocumentKey) -> Self {
        Self::with_writer(key, fresh_writer_id())
    }

    /// A new incarnation with a chosen writer id, never used before for
    /// this document.
    pub fn with_writer(key: DocumentKey, writer: WriterId) -> Self {
        LocalFieldDocument {
            key,
            replica: FieldReplica::new(writer),
        }
    }

    pub fn key(&self) -> &DocumentKey {
        &self.key
    }

    /// What the user sees now, field by field.
    pub fn document(&self) -> &FieldDocument {
        self.replica.document()
    }

    /// Own writes the backend has not yet been seen to hold.
    pub fn unconfirmed(&self) -> &[FieldWrite] {
        self.replica.unconfirmed()
    }

    /// An edit of named fields, visible at once; `sync` sends it.
    pub fn patch(&mut self, patch: Patch) -> FieldWrite {
        self.replica.edit(Change::Patch(patch))
    }

    /// An edit of the whole document (every field), visible at once.
    pub fn replace(&mut self, value: settings_sync_protocol::Value) -> FieldWrite {
        self.replica.edit(Change::Whole(value))
    }

    /// Applies a document received from the backend by the per-field adopt
    /// rule. Returns the names of the fields whose shown value changed.
    pub fn observe(&mut self, document: &Document) -> Vec<String> {
        self.replica.observe(&document.field_document())
    }

    /// Sends every unconfirmed write, oldest first, each under its own
    /// stamp, adopting each answer; with none, reads the stored document.
    /// Returns the decision of each write sent.
    pub async fn sync(&mut self, client: &mut Client) -> Result<Vec<Decision>, Error> {
        let mut decisions = Vec::new();
        for write in self.replica.unconfirmed().to_vec() {
            // An earlier answer of this round may already show it.
            if !self.replica.unconfirmed().contains(&write) {
                continue;
            }
            let reply = client.sync_fields(&self.key, &write).await?;
            self.observe(&reply.document);
            decisions.push(reply.report.decision);
        }
        if decisions.is_empty()
            && let Some(document) = client.get(&self.key).await?
        {
            self.observe(&document);
        }
        Ok(decisions)
    }
}
