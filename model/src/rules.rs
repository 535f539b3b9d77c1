//! Merge and adopt rules. `Correct` calls the protocol crate itself, so the
//! model checks the shipped code; the seed variants re-state the seed post.

use settings_sync_protocol::replica::adopts;
use settings_sync_protocol::{
    Clock, Decision, MergePolicy, Stamp, Value, Versioned, WriterId, merge,
};

/// An edit's identity; the value a client shows is the edit that made it.
pub type EditId = u8;

/// A stamp as the model carries it: a clock and a writer incarnation. The
/// seed rules ignore the writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelStamp {
    pub clock: u64,
    pub writer: u8,
}

/// A value with its stamp, as stored or carried in a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Held {
    pub edit: Option<EditId>,
    pub stamp: ModelStamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// `(clock, writer)` stamps; the backend keeps the larger (protocol crate).
    Correct,
    /// The seed's first rule: larger clock wins, no tie-break; the backend
    /// stores `c + 1`, a client adopts and sets `clock = c + 1`.
    SeedOriginal,
    /// The seed's fix: as above, and on an equal clock the backend keeps its
    /// value and bumps its clock.
    SeedFixed,
    /// A planted bug in the correct rules: stamps compared by clock only.
    ClockOnly,
}

impl Rules {
    /// The stamp of a client's next edit; `clock` is the client's clock.
    pub fn edit_stamp(self, clock: &mut u64, writer: u8) -> ModelStamp {
        *clock += 1;
        ModelStamp {
            clock: *clock,
            writer,
        }
    }

    /// The backend merges `incoming` into `stored`; returns whether the
    /// incoming value was applied.
    pub fn backend_receive(self, stored: &mut Held, incoming: Held) -> bool {
        let Some(_) = incoming.edit else { return false };
        match self {
            Rules::Correct => {
                let stored_v = stored.edit.map(|_| versioned(stored));
                let incoming_v = versioned(&incoming);
                let decision = merge(stored_v.as_ref(), &incoming_v, MergePolicy::UNBOUNDED);
                let applied = decision == Ok(Decision::Applied);
                if applied {
                    *stored = incoming;
                }
                applied
            }
            Rules::ClockOnly => {
                let applied = stored.edit.is_none() || incoming.stamp.clock > stored.stamp.clock;
                if applied {
                    *stored = incoming;
                }
                applied
            }
            Rules::SeedOriginal | Rules::SeedFixed => {
                let c = incoming.stamp.clock;
                if c > stored.stamp.clock {
                    *stored = Held {
                        edit: incoming.edit,
                        stamp: ModelStamp {
                            clock: c + 1,
                            writer: 0,
                        },
                    };
                    true
                } else {
                    if self == Rules::SeedFixed && c == stored.stamp.clock {
                        stored.stamp.clock += 1;
                    }
                    false
                }
            }
        }
    }

    /// A client with state `local` and clock `clock` receives the backend's
    /// state; returns whether it adopted it.
    pub fn client_receive(self, local: &mut Held, clock: &mut u64, remote: Held) -> bool {
        let Some(_) = remote.edit else { return false };
        match self {
            Rules::Correct => {
                let local_v = local.edit.map(|_| versioned(local));
                let adopt = adopts(local_v.as_ref(), &versioned(&remote));
                *clock = (*clock).max(remote.stamp.clock);
                if adopt {
                    *local = remote;
                }
                adopt
            }
            Rules::ClockOnly => {
                *clock = (*clock).max(remote.stamp.clock);
                let adopt = local.edit.is_none() || remote.stamp.clock > local.stamp.clock;
                if adopt {
                    *local = remote;
                }
                adopt
            }
            Rules::SeedOriginal | Rules::SeedFixed => {
                if remote.stamp.clock > *clock {
                    *local = remote;
                    *clock = remote.stamp.clock + 1;
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// The protocol crate's view of a model value, built once per value: the
/// checker asks millions of times.
fn versioned(held: &Held) -> Versioned {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<Held, Versioned>> = Default::default();
    }
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .entry(*held)
            .or_insert_with(|| build_versioned(held))
            .clone()
    })
}

/// The edit id as content.
fn build_versioned(held: &Held) -> Versioned {
    let mut map = serde_json::Map::new();
    map.insert(
        "edit".into(),
        held.edit.map_or(serde_json::Value::Null, |e| e.into()),
    );
    let clock = Clock::new(held.stamp.clock).expect("model clocks are small");
    // Zero-padded, so the protocol's bytewise order of writer ids is the
    // model's numeric order.
    let writer = WriterId::parse(format!("w{:03}", held.stamp.writer)).expect("a valid writer id");
    Versioned {
        value: Value::object(map),
        stamp: Stamp::new(clock, writer),
    }
}
