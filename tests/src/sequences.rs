//! The seed post's events as data: random sequences of what browsers do,
//! for proptest to generate and shrink, printed as a readable story.
//!
//! The seed's four events are a change that is sent, a change that is not,
//! a sync and a reset. To those we add what makes stale replies: a send
//! whose request reaches the backend but whose reply is lost, or is held
//! back and reaches the page at a later step.

use std::fmt;

use proptest::prelude::*;

/// What becomes of the reply to a request that reached the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Delivered,
    /// The browser never sees it.
    Lost,
    /// It reaches the page at a later step ([`Action::DeliverHeld`]), or
    /// after the final sync rounds.
    Held,
    /// The request itself is delayed in the network: it reaches the backend
    /// at a later step ([`Action::Arrives`]), or before the final sync
    /// rounds, and its reply reaches the page unless the page has reloaded.
    Delayed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The user changes the setting (deletes the document if `delete`);
    /// `send`: whether the browser sends it, and what becomes of the reply.
    Change { delete: bool, send: Option<Reply> },
    /// The browser sends what it shows (or, showing nothing, reads).
    Sync(Reply),
    /// The browser's `nth` held reply (counting modulo how many it holds)
    /// reaches the page.
    DeliverHeld { nth: usize },
    /// The page reloads: a new incarnation that knows nothing.
    Reset,
    /// The `nth` delayed request in the network (counting modulo how many
    /// there are, whichever browser sent it) reaches the backend.
    Arrives { nth: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Which browser, modulo the case's number of browsers.
    pub browser: usize,
    /// Which server replica the request goes to, modulo the replicas.
    pub replica: usize,
    pub action: Action,
}

/// One generated sequence: `browsers` browsers on one document, the
/// steps, then (run by [`crate::simulation`]) two clean sync rounds.
#[derive(Clone, PartialEq, Eq)]
pub struct Case {
    pub browsers: usize,
    pub replicas: usize,
    pub steps: Vec<Step>,
}

impl Case {
    /// The browser and replica a step addresses.
    pub fn route(&self, step: &Step) -> (usize, usize) {
        (step.browser % self.browsers, step.replica % self.replicas)
    }
}

/// Sequences of up to 16 steps by 2 to 4 browsers over `replicas` servers.
pub fn cases(replicas: usize) -> impl Strategy<Value = Case> {
    let delete = || prop::bool::weighted(0.15);
    let late = || prop_oneof![Just(Reply::Lost), Just(Reply::Held), Just(Reply::Delayed)];
    // Shrinking moves towards the first alternatives: the seed's events.
    let action = prop_oneof![
        4 => delete().prop_map(|delete| Action::Change { delete, send: Some(Reply::Delivered) }),
        3 => delete().prop_map(|delete| Action::Change { delete, send: None }),
        3 => Just(Action::Sync(Reply::Delivered)),
        1 => Just(Action::Reset),
        4 => (delete(), late()).prop_map(|(delete, reply)| Action::Change { delete, send: Some(reply) }),
        1 => late().prop_map(Action::Sync),
        3 => (0..3usize).prop_map(|nth| Action::DeliverHeld { nth }),
        2 => (0..3usize).prop_map(|nth| Action::Arrives { nth }),
    ];
    let step =
        (0..4usize, 0..replicas.max(1), action).prop_map(|(browser, replica, action)| Step {
            browser,
            replica,
            action,
        });
    (2..=4usize, prop::collection::vec(step, 0..=16)).prop_map(move |(browsers, steps)| Case {
        browsers,
        replicas: replicas.max(1),
        steps,
    })
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} browsers, {} steps", self.browsers, self.steps.len())?;
        if self.replicas > 1 {
            write!(f, ", {} replicas", self.replicas)?;
        }
        writeln!(f, ":")?;
        for (i, step) in self.steps.iter().enumerate() {
            let (browser, replica) = self.route(step);
            let via = if self.replicas > 1 {
                format!(" via replica {replica}")
            } else {
                String::new()
            };
            let what = match step.action {
                Action::Change { delete, send } => {
                    let change = if delete {
                        "deletes the settings"
                    } else {
                        "changes a setting"
                    };
                    match send {
                        None => format!("{change}, not sent"),
                        Some(reply) => format!("{change} and sends it{via}{}", outcome(reply)),
                    }
                }
                Action::Sync(reply) => format!("syncs{via}{}", outcome(reply)),
                Action::DeliverHeld { nth } => format!("receives held reply #{nth}"),
                Action::Reset => "resets".into(),
                Action::Arrives { nth } => {
                    writeln!(f, "  {:>2}. delayed request #{nth} arrives{via}", i + 1)?;
                    continue;
                }
            };
            writeln!(f, "  {:>2}. browser {browser} {what}", i + 1)?;
        }
        write!(
            f,
            "  then delayed requests arrive, two clean sync rounds, held replies arrive last"
        )
    }
}

fn outcome(reply: Reply) -> &'static str {
    match reply {
        Reply::Delivered => "",
        Reply::Lost => "; the reply is lost",
        Reply::Held => "; the reply is held back",
        Reply::Delayed => "; the request is delayed",
    }
}
