//! A stored document as the backend reports it.

use std::time::SystemTime;

use crate::{DocumentKey, Versioned};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub key: DocumentKey,
    pub state: Versioned,
    /// Position of this document's last change in its tenant's change order.
    pub revision: i64,
    pub updated_at: SystemTime,
}
