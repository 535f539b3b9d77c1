//! The correct rules are the protocol crate's own code: `merge` and `join`
//! at the backend, `Replica::edit`, `Replica::observe` (and so `adopts`) at
//! the client. This module translates model values to protocol values and
//! back.
//!
//! Each function is pure, so its results are memoized per distinct input:
//! the real code runs once per input, not once per transition (millions).
//!
//! Writer names become ids `w000`, `w001`, ...: zero-padded, so the
//! protocol's bytewise order of ids is the model's numeric order.

use std::cell::RefCell;

use crate::canon::FastMap;
use std::hash::Hash;

use settings_sync_protocol::merge::join;
use settings_sync_protocol::{
    Clock, Decision, MergePolicy, Replica, Stamp as RealStamp, Value, Versioned, WriterId, merge,
};

use crate::state::{EditId, Held, Stamp};

/// The backend merges `incoming` into `stored`: the decision (`None` if the
/// merge rejected the write) and the state after it.
pub fn backend_merge(stored: Held, incoming: Held) -> (Option<Decision>, Held) {
    thread_local!(static MEMO: Memo<(Held, Held), (Option<Decision>, Held)> = Default::default());
    memoized(&MEMO, (stored, incoming), || {
        let stored_v = versioned(stored);
        let incoming_v = versioned(incoming).expect("requests with no value never reach merge");
        let decision = merge(stored_v.as_ref(), &incoming_v, MergePolicy::UNBOUNDED).ok();
        let after = match decision {
            // A rejected write changes nothing (protocol.md).
            None => stored,
            Some(_) => held(join(stored_v.as_ref(), &incoming_v)),
        };
        (decision, after)
    })
}

/// A client of writer `writer` showing `current` with clock `clock` edits;
/// returns its new clock and value.
pub fn client_edit(writer: u8, current: Held, clock: u8, edit: EditId) -> (u8, Held) {
    thread_local!(static MEMO: Memo<ClientInput<EditId>, (u8, Held)> = Default::default());
    memoized(&MEMO, (writer, current, clock, edit), || {
        let mut replica = rebuild(writer, current, clock);
        replica.edit(content(edit));
        snapshot(&replica)
    })
}

/// The same client receives the backend's state `remote`: whether it adopted
/// it, and its new clock and value.
pub fn client_observe(writer: u8, current: Held, clock: u8, remote: Held) -> (bool, u8, Held) {
    thread_local!(static MEMO: Memo<ClientInput<Held>, (bool, u8, Held)> = Default::default());
    memoized(&MEMO, (writer, current, clock, remote), || {
        let mut replica = rebuild(writer, current, clock);
        let remote = versioned(remote).expect("responses with no value never reach a replica");
        let adopted = replica.observe(&remote);
        let (clock, held) = snapshot(&replica);
        (adopted, clock, held)
    })
}

/// A client's writer, value and clock, and what it is given.
type ClientInput<T> = (u8, Held, u8, T);

/// One function's results, per thread.
type Memo<K, V> = RefCell<FastMap<K, V>>;

fn memoized<K: Hash + Eq + Copy, V: Copy>(
    memo: &'static std::thread::LocalKey<Memo<K, V>>,
    key: K,
    compute: impl FnOnce() -> V,
) -> V {
    if let Some(found) = memo.with(|m| m.borrow().get(&key).copied()) {
        return found;
    }
    let value = compute();
    memo.with(|m| m.borrow_mut().insert(key, value));
    value
}

/// A `Replica` in the model's client state. `Replica` offers no setter, so
/// it is rebuilt by observing its own value. That reaches every state a
/// correct replica can be in, because its clock always equals its value's
/// clock (an edit sets both; an observe that raises the clock adopts). A
/// replica whose clock ran ahead of its value breaks that invariant: the
/// model refuses to go on rather than check something else.
fn rebuild(writer: u8, current: Held, clock: u8) -> Replica {
    let mut replica = Replica::new(writer_id(writer));
    if let Some(value) = versioned(current) {
        replica.observe(&value);
    }
    assert_eq!(
        replica.clock().get(),
        u64::from(clock),
        "a replica's clock ran ahead of its value ({current:?} at clock {clock}): \
         the invariant the model relies on is broken"
    );
    replica
}

fn snapshot(replica: &Replica) -> (u8, Held) {
    let clock = u8::try_from(replica.clock().get()).expect("model clocks are small");
    (clock, replica.current().map_or(Held::default(), held))
}

/// An edit's content: `{"edit": id}`, so distinct edits are distinct values.
fn content(edit: EditId) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("edit".into(), edit.into());
    Value::object(map)
}

fn writer_id(writer: u8) -> WriterId {
    WriterId::parse(format!("w{writer:03}")).expect("a valid writer id")
}

fn versioned(held: Held) -> Option<Versioned> {
    let edit = held.edit?;
    let clock = Clock::new(u64::from(held.stamp.clock)).expect("model clocks are small");
    Some(Versioned {
        value: content(edit),
        stamp: RealStamp::new(clock, writer_id(held.stamp.writer)),
    })
}

fn held(versioned: &Versioned) -> Held {
    let edit = versioned
        .value
        .as_object()
        .and_then(|map| map.get("edit"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|e| EditId::try_from(e).ok())
        .expect("the protocol returned a value the model did not make");
    let writer = versioned.stamp.writer.as_str()[1..]
        .parse()
        .expect("the protocol returned a writer the model did not make");
    let clock = u8::try_from(versioned.stamp.clock.get()).expect("model clocks are small");
    Held {
        edit: Some(edit),
        stamp: Stamp { clock, writer },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(edit: EditId, clock: u8, writer: u8) -> Held {
        Held {
            edit: Some(edit),
            stamp: Stamp { clock, writer },
        }
    }

    #[test]
    fn equal_clocks_are_broken_by_the_writer_name_in_numeric_order() {
        // 9 < 10 numerically but "w9" > "w10" bytewise: padding must agree.
        let (low, high) = (at(0, 1, 9), at(1, 1, 10));
        assert_eq!(backend_merge(low, high).1, high);
        assert_eq!(backend_merge(high, low).1, high);
    }

    #[test]
    fn an_edit_ticks_past_everything_seen() {
        let (adopted, clock, value) = client_observe(1, Held::default(), 0, at(0, 5, 2));
        assert!(adopted);
        assert_eq!(client_edit(1, value, clock, 1), (6, at(1, 6, 1)));
    }
}
