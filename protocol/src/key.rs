//! Document keys: `(tenant, owner, name)`, each a short ASCII id.

use std::fmt;

/// One part of a document key. 1 to 128 bytes of ASCII letters, digits and
/// `-`, `_`, `.`, `:`, `@`: enough for user ids, emails and dotted names,
/// and nothing a log line, a SQL `LIKE` or a metric label can trip over.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{0} is longer than {max} bytes", max = Id::MAX_LEN)]
    TooLong(&'static str),
    #[error("{0} may contain only ASCII letters, digits and '-', '_', '.', ':', '@'")]
    BadCharacter(&'static str),
}

impl Id {
    pub const MAX_LEN: usize = 128;

    /// `field` names the id in error messages ("tenant", "owner", ...).
    pub fn parse(field: &'static str, id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(IdError::Empty(field));
        }
        if id.len() > Self::MAX_LEN {
            return Err(IdError::TooLong(field));
        }
        let allowed =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@');
        if !id.bytes().all(allowed) {
            return Err(IdError::BadCharacter(field));
        }
        Ok(Id(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentKey {
    pub tenant: Id,
    pub owner: Id,
    pub name: Id,
}

impl DocumentKey {
    pub fn parse(tenant: &str, owner: &str, name: &str) -> Result<Self, IdError> {
        Ok(DocumentKey {
            tenant: Id::parse("tenant", tenant)?,
            owner: Id::parse("owner", owner)?,
            name: Id::parse("name", name)?,
        })
    }
}

impl fmt::Display for DocumentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.owner, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_user_ids_and_emails() {
        assert!(DocumentKey::parse("acme", "dispatcher@acme.example", "alerts.v2").is_ok());
    }

    #[test]
    fn bad_ids_name_the_field() {
        assert_eq!(
            DocumentKey::parse("", "a", "b"),
            Err(IdError::Empty("tenant"))
        );
        assert_eq!(
            DocumentKey::parse("t", "a/b", "b"),
            Err(IdError::BadCharacter("owner"))
        );
        assert_eq!(
            DocumentKey::parse("t", "a", &"n".repeat(129)),
            Err(IdError::TooLong("name"))
        );
        assert_eq!(
            DocumentKey::parse("t", "a\0", "b"),
            Err(IdError::BadCharacter("owner"))
        );
        assert_eq!(
            DocumentKey::parse("t", "é", "b"),
            Err(IdError::BadCharacter("owner"))
        );
    }
}
