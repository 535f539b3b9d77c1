//! Simulated per-field browsers for the convergence tests of the opt-in
//! per-field mode: the client crate's `LocalFieldDocument`, and planted
//! bugs the tests must catch. The bugs live here, in the tests, never in
//! shipped code.
//!
//! Writer ids are `b{browser}.{incarnation}`, as in [`crate::browsers`], so
//! a failing sequence fails again when it is replayed to shrink it.

use settings_sync_client::LocalFieldDocument;
use settings_sync_protocol::fields::{Change, FieldDocument, FieldWrite, confirmed};
use settings_sync_protocol::{Clock, Document, DocumentKey, Stamp, WriterId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldVariant {
    /// The protocol, as the client crate implements it.
    Protocol,
    /// Planted bug: whole-document mode's adopt rule on a field-merged
    /// document: the backend's document replaces what the user sees iff
    /// its *document* stamp is larger, whatever each field's stamp.
    AdoptsByDocumentStamp,
    /// Planted bug: a patch of two or more fields goes out without its
    /// last field.
    DropsAField,
}

/// The planted adopt rule, over the same edits as the protocol's replica.
struct ByDocumentStamp {
    writer: WriterId,
    clock: Clock,
    document: FieldDocument,
    unconfirmed: Vec<FieldWrite>,
}

impl ByDocumentStamp {
    fn edit(&mut self, change: Change) -> FieldWrite {
        self.clock = self.clock.tick();
        let write = FieldWrite {
            stamp: Stamp::new(self.clock, self.writer.clone()),
            change,
        };
        self.document = self.document.join_write(&write);
        self.unconfirmed.push(write.clone());
        write
    }

    fn observe(&mut self, remote: &FieldDocument) {
        if let Some(stamp) = remote.stamp() {
            self.clock = self.clock.max(stamp.clock);
        }
        if remote.stamp() > self.document.stamp() {
            self.document = remote.clone();
        }
        self.unconfirmed.retain(|write| !confirmed(write, remote));
    }
}

enum Local {
    Doc(LocalFieldDocument),
    ByDocumentStamp(ByDocumentStamp),
}

fn writer(index: usize, incarnation: u32) -> WriterId {
    WriterId::parse(format!("b{index}.{incarnation}")).expect("a valid writer id")
}

pub struct FieldBrowser {
    variant: FieldVariant,
    key: DocumentKey,
    index: usize,
    incarnation: u32,
    local: Local,
    /// Replies that reached the browser but not the page yet; a reset
    /// drops them.
    pub held: Vec<Document>,
}

impl FieldBrowser {
    pub fn new(variant: FieldVariant, key: DocumentKey, index: usize) -> Self {
        FieldBrowser {
            local: fresh(variant, &key, &writer(index, 0)),
            variant,
            key,
            index,
            incarnation: 0,
            held: Vec::new(),
        }
    }

    /// The current writer id, e.g. `b0.1`.
    pub fn name(&self) -> String {
        writer(self.index, self.incarnation).to_string()
    }

    /// Which page load this is.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// A reload: a new incarnation that knows nothing; its unsent writes
    /// are gone.
    pub fn reset(&mut self) {
        self.incarnation += 1;
        self.held.clear();
        self.local = fresh(
            self.variant,
            &self.key,
            &writer(self.index, self.incarnation),
        );
    }

    /// What the user sees, field by field.
    pub fn document(&self) -> &FieldDocument {
        match &self.local {
            Local::Doc(doc) => doc.document(),
            Local::ByDocumentStamp(naive) => &naive.document,
        }
    }

    /// Own writes not yet seen stored: what a sync sends, oldest first.
    pub fn unconfirmed(&self) -> Vec<FieldWrite> {
        match &self.local {
            Local::Doc(doc) => doc.unconfirmed().to_vec(),
            Local::ByDocumentStamp(naive) => naive.unconfirmed.clone(),
        }
    }

    /// A user's edit, shown at once.
    pub fn edit(&mut self, change: Change) -> FieldWrite {
        match (&mut self.local, change) {
            (Local::Doc(doc), Change::Patch(patch)) => doc.patch(patch),
            (Local::Doc(doc), Change::Whole(value)) => doc.replace(value),
            (Local::ByDocumentStamp(naive), change) => naive.edit(change),
        }
    }

    /// A reply (or a read) reaches the page.
    pub fn observe(&mut self, document: &Document) {
        match &mut self.local {
            Local::Doc(doc) => {
                doc.observe(document);
            }
            Local::ByDocumentStamp(naive) => naive.observe(&document.field_document()),
        }
    }

    /// What goes on the wire for `write`: the write itself, except in
    /// [`FieldVariant::DropsAField`].
    pub fn outgoing(&self, write: &FieldWrite) -> FieldWrite {
        let mut sent = write.clone();
        if let (FieldVariant::DropsAField, Change::Patch(patch)) = (self.variant, &mut sent.change)
            && patch.len() >= 2
        {
            patch.pop_last();
        }
        sent
    }
}

fn fresh(variant: FieldVariant, key: &DocumentKey, writer: &WriterId) -> Local {
    match variant {
        FieldVariant::AdoptsByDocumentStamp => Local::ByDocumentStamp(ByDocumentStamp {
            writer: writer.clone(),
            clock: Clock::ZERO,
            document: FieldDocument::new(),
            unconfirmed: Vec::new(),
        }),
        _ => Local::Doc(LocalFieldDocument::with_writer(key.clone(), writer.clone())),
    }
}
