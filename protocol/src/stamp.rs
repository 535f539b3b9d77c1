//! Stamps: a Lamport clock plus the id of the writer incarnation that made
//! the edit. Ordered by clock, then by writer bytewise, so any two distinct
//! writes are ordered the same way everywhere.

use std::fmt;

/// A Lamport clock value. Bounded by `i64::MAX` so every store can keep it
/// in a signed 64-bit column without loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Clock(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("clock {0} exceeds the maximum {max}", max = Clock::MAX.0)]
    TooLarge(u64),
}

impl Clock {
    pub const ZERO: Clock = Clock(0);
    pub const MAX: Clock = Clock(i64::MAX as u64);

    pub fn new(value: u64) -> Result<Self, ClockError> {
        if value > Self::MAX.0 {
            return Err(ClockError::TooLarge(value));
        }
        Ok(Clock(value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The clock of the next local event after having seen `self`.
    /// Saturates at [`Clock::MAX`]; a client there can no longer win a merge,
    /// which the backend's clock-jump limit keeps from happening by accident.
    pub fn tick(self) -> Clock {
        Clock(self.0.saturating_add(1).min(Self::MAX.0))
    }
}

impl TryFrom<i64> for Clock {
    type Error = ClockError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        // Negative values never come from a valid store row.
        Clock::new(u64::try_from(value).map_err(|_| ClockError::TooLarge(u64::MAX))?)
    }
}

impl From<Clock> for i64 {
    fn from(clock: Clock) -> i64 {
        // Lossless by construction: Clock::MAX == i64::MAX.
        clock.0 as i64
    }
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies one incarnation of a client: a fresh id each time a client
/// starts or resets, so one writer never reuses a clock for other content.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriterId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriterIdError {
    #[error("writer id must not be empty")]
    Empty,
    #[error("writer id is longer than {max} bytes", max = WriterId::MAX_LEN)]
    TooLong,
    #[error("writer id may contain only ASCII letters, digits and '-', '_', '.', ':'")]
    BadCharacter,
}

impl WriterId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(id: impl Into<String>) -> Result<Self, WriterIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(WriterIdError::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(WriterIdError::TooLong);
        }
        if !id.bytes().all(is_id_byte) {
            return Err(WriterIdError::BadCharacter);
        }
        Ok(WriterId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `(clock, writer)`, totally ordered by clock and then by writer bytes.
/// The derived `Ord` relies on field order; ASCII ids compare bytewise as
/// `String`s do, which matches `COLLATE "C"` in PostgreSQL and SQLite's
/// default `BINARY` collation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub clock: Clock,
    pub writer: WriterId,
}

impl Stamp {
    pub fn new(clock: Clock, writer: WriterId) -> Self {
        Stamp { clock, writer }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.clock, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(clock: u64, writer: &str) -> Stamp {
        Stamp::new(Clock::new(clock).unwrap(), WriterId::parse(writer).unwrap())
    }

    #[test]
    fn stamps_order_by_clock_before_writer() {
        assert!(stamp(1, "z") < stamp(2, "a"));
        assert!(stamp(2, "a") < stamp(2, "b"));
        assert_eq!(stamp(2, "a"), stamp(2, "a"));
    }

    #[test]
    fn writers_compare_bytewise_not_by_locale() {
        // Uppercase sorts before lowercase bytewise; a locale collation differs.
        assert!(stamp(1, "Z") < stamp(1, "a"));
        assert!(stamp(1, "a-b") < stamp(1, "a.b"));
    }

    #[test]
    fn clocks_above_i64_max_are_rejected() {
        assert!(Clock::new(i64::MAX as u64).is_ok());
        assert_eq!(
            Clock::new(i64::MAX as u64 + 1),
            Err(ClockError::TooLarge(i64::MAX as u64 + 1))
        );
        assert!(Clock::try_from(-1i64).is_err());
    }

    #[test]
    fn tick_saturates_at_the_maximum() {
        assert_eq!(Clock::MAX.tick(), Clock::MAX);
        assert_eq!(Clock::ZERO.tick().get(), 1);
    }

    #[test]
    fn writer_ids_are_checked() {
        assert_eq!(WriterId::parse(""), Err(WriterIdError::Empty));
        assert_eq!(WriterId::parse("a".repeat(65)), Err(WriterIdError::TooLong));
        assert_eq!(WriterId::parse("a b"), Err(WriterIdError::BadCharacter));
        assert_eq!(WriterId::parse("a\0"), Err(WriterIdError::BadCharacter));
        assert!(WriterId::parse("tab-1:4f2a.x_y").is_ok());
    }
}
