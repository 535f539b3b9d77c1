//! The client half of the protocol: a local copy of one document.
//!
//! - edit: `clock = max(clock, last seen clock) + 1`, stamp `(clock, me)`;
//! - receive the backend's state: adopt it if its stamp is larger than the
//!   local stamp; the local clock becomes the max of both clocks.
//!
//! A reset is a new `Replica` with a fresh writer id.

use crate::{Clock, Stamp, Value, Versioned, WriterId};

#[derive(Clone, Debug)]
pub struct Replica {
    writer: WriterId,
    /// The largest clock made or seen; the next edit ticks past it.
    clock: Clock,
    current: Option<Versioned>,
}

impl Replica {
    pub fn new(writer: WriterId) -> Self {
        Replica {
            writer,
            clock: Clock::ZERO,
            current: None,
        }
    }

    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// What the user sees now, with the stamp of the write that made it.
    pub fn current(&self) -> Option<&Versioned> {
        self.current.as_ref()
    }

    /// A local edit: takes effect at once (optimistic) and returns the
    /// write to send.
    pub fn edit(&mut self, value: Value) -> Versioned {
        self.clock = self.clock.tick();
        let write = Versioned {
            value,
            stamp: Stamp::new(self.clock, self.writer.clone()),
        };
        self.current = Some(write.clone());
        write
    }

    /// Applies the backend's state. Returns whether the local value changed.
    /// A response older than the local value (a late answer to an earlier
    /// request) is ignored, so the user never sees a value flicker back.
    pub fn observe(&mut self, remote: &Versioned) -> bool {
        self.clock = self.clock.max(remote.stamp.clock);
        if adopts(self.current.as_ref(), remote) {
            self.current = Some(remote.clone());
            return true;
        }
        false
    }
}

/// The adopt rule: take the remote state iff its stamp is larger.
pub fn adopts(local: Option<&Versioned>, remote: &Versioned) -> bool {
    local.is_none_or(|local| remote.stamp > local.stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: i64) -> Value {
        Value::from_json(serde_json::json!({ "n": n })).unwrap()
    }

    fn replica(writer: &str) -> Replica {
        Replica::new(WriterId::parse(writer).unwrap())
    }

    #[test]
    fn edits_tick_past_everything_seen() {
        let mut a = replica("a");
        let first = a.edit(value(1));
        assert_eq!(first.stamp.clock.get(), 1);
        let remote = Versioned {
            value: value(2),
            stamp: Stamp::new(Clock::new(7).unwrap(), WriterId::parse("b").unwrap()),
        };
        assert!(a.observe(&remote));
        assert_eq!(a.edit(value(3)).stamp.clock.get(), 8);
    }

    #[test]
    fn a_late_response_never_undoes_a_newer_edit() {
        let mut a = replica("a");
        let click_a = a.edit(value(1));
        let click_b = a.edit(value(2));
        // The backend answers the first request after the second click.
        assert!(!a.observe(&click_a));
        assert_eq!(a.current(), Some(&click_b));
    }

    #[test]
    fn equal_clocks_adopt_the_larger_writer() {
        let mut a = replica("a");
        a.edit(value(1));
        let remote = Versioned {
            value: value(2),
            stamp: Stamp::new(Clock::new(1).unwrap(), WriterId::parse("b").unwrap()),
        };
        assert!(a.observe(&remote));
        assert_eq!(a.current().unwrap().value, value(2));
    }
}
