//! A stored document as the backend reports it.

use std::time::SystemTime;

use crate::fields::{Change, FieldDocument, FieldWrite};
use crate::{DocumentKey, Versioned};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub key: DocumentKey,
    /// What a whole-document reader sees: the merged value under the
    /// document's stamp.
    pub state: Versioned,
    /// The per-field registers behind `state`, only while the document
    /// holds a patch (`FieldDocument::holds_patch`); `None` means every
    /// field is at `state`'s stamp, as in whole-document mode.
    pub fields: Option<FieldDocument>,
    /// Position of this document's last change in its tenant's change order.
    pub revision: i64,
    pub updated_at: SystemTime,
}

impl Document {
    /// The document as the per-field merge sees it.
    pub fn field_document(&self) -> FieldDocument {
        match &self.fields {
            Some(fields) => fields.clone(),
            None => FieldDocument::from_write(&FieldWrite {
                stamp: self.state.stamp.clone(),
                change: Change::Whole(self.state.value.clone()),
            }),
        }
    }
}
