//! The merge and adopt rules, pluggable. `Correct` is the protocol crate's
//! code (through `real`); the others are mutations the checker must catch,
//! written out here exactly as stated.

use settings_sync_protocol::Decision;

use crate::real;
use crate::state::{Client, EditId, Held, Stamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rules {
    /// `(clock, writer)` stamps; the backend keeps the larger (`merge`,
    /// `join`), a client adopts a larger stamp (`Replica`, `adopts`).
    Correct,
    /// The seed's first rule: edit `clock += 1`; the backend adopts iff
    /// `c > B.clock` and stores `c + 1`; a client adopts iff `c > clock`
    /// and sets `clock = c + 1`. No tie-break.
    SeedOriginal,
    /// The seed's fix: as `SeedOriginal`, and on `c == B.clock` the backend
    /// keeps its value and bumps `B.clock += 1`.
    SeedFixed,
    /// A planted bug in the correct rules: stamps compared by clock alone,
    /// the writer tie-break forgotten (backend and client alike).
    ClockOnly,
    /// A planted bug in the correct rules: a client does not move its clock
    /// up to what it observes, so its next edit may carry a smaller stamp
    /// than an edit it has already seen.
    NoClockCatchUp,
}

impl Rules {
    pub const ALL: [Rules; 5] = [
        Rules::Correct,
        Rules::SeedOriginal,
        Rules::SeedFixed,
        Rules::ClockOnly,
        Rules::NoClockCatchUp,
    ];

    /// Whether stamps carry writer names. The seed's rules have none, so
    /// the model gives their writers no names (and resets no choices).
    pub fn uses_writers(self) -> bool {
        !matches!(self, Rules::SeedOriginal | Rules::SeedFixed)
    }

    fn is_seed(self) -> bool {
        !self.uses_writers()
    }

    /// The client makes edit `edit`; returns the stamp it gives it.
    pub fn edit(self, client: &mut Client, edit: EditId) -> Stamp {
        if self == Rules::Correct {
            let (clock, held) = real::client_edit(client.writer, client.held, client.clock, edit);
            (client.clock, client.held) = (clock, held);
            return held.stamp;
        }
        client.clock += 1;
        let stamp = Stamp {
            clock: client.clock,
            writer: client.writer,
        };
        client.held = Held {
            edit: Some(edit),
            // The seed's clients show a value and keep one clock.
            stamp: if self.is_seed() {
                Stamp::default()
            } else {
                stamp
            },
        };
        stamp
    }

    /// What a sync sends: the value and its stamp; the seed's clients send
    /// their value and their clock.
    pub fn outgoing(self, client: &Client) -> Held {
        if self.is_seed() {
            let stamp = Stamp {
                clock: client.clock,
                writer: 0,
            };
            return Held {
                edit: client.held.edit,
                stamp,
            };
        }
        client.held
    }

    /// The backend receives `incoming`; `None` if it rejected it. A request
    /// with no value is a read: it changes nothing.
    pub fn backend_receive(self, stored: &mut Held, incoming: Held) -> Option<Decision> {
        if incoming.edit.is_none() {
            return Some(Decision::Unchanged);
        }
        match self {
            Rules::Correct | Rules::NoClockCatchUp => {
                let (decision, after) = real::backend_merge(*stored, incoming);
                *stored = after;
                decision
            }
            Rules::ClockOnly => Some(
                if stored.edit.is_none() || incoming.stamp.clock > stored.stamp.clock {
                    *stored = incoming;
                    Decision::Applied
                } else if incoming == *stored {
                    Decision::Unchanged
                } else {
                    Decision::Stale
                },
            ),
            Rules::SeedOriginal | Rules::SeedFixed => {
                let c = incoming.stamp.clock;
                if c > stored.stamp.clock {
                    stored.edit = incoming.edit;
                    stored.stamp.clock = c + 1;
                    return Some(Decision::Applied);
                }
                if self == Rules::SeedFixed && c == stored.stamp.clock {
                    stored.stamp.clock += 1;
                }
                Some(Decision::Stale)
            }
        }
    }

    /// The client receives the backend's state; returns whether it adopted
    /// it. A response with no value (nothing stored yet) changes nothing.
    pub fn client_receive(self, client: &mut Client, remote: Held) -> bool {
        if remote.edit.is_none() {
            return false;
        }
        match self {
            Rules::Correct => {
                let (adopted, clock, held) =
                    real::client_observe(client.writer, client.held, client.clock, remote);
                (client.clock, client.held) = (clock, held);
                adopted
            }
            Rules::ClockOnly | Rules::NoClockCatchUp => {
                let adopt = client.held.edit.is_none()
                    || if self == Rules::ClockOnly {
                        remote.stamp.clock > client.held.stamp.clock
                    } else {
                        remote.stamp > client.held.stamp
                    };
                if self == Rules::ClockOnly {
                    client.clock = client.clock.max(remote.stamp.clock);
                }
                if adopt {
                    client.held = remote;
                }
                adopt
            }
            Rules::SeedOriginal | Rules::SeedFixed => {
                let c = remote.stamp.clock;
                if c <= client.clock {
                    return false;
                }
                client.held = Held {
                    edit: remote.edit,
                    stamp: Stamp::default(),
                };
                client.clock = c + 1;
                true
            }
        }
    }
}
