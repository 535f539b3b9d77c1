//! Simulated browsers for the convergence property tests: the client crate's
//! `LocalDocument`, and two planted bugs the tests must catch.
//!
//! Writer ids are `b{browser}.{incarnation}`, not random: stamps with equal
//! clocks then order the same way on every run, so a failing sequence fails
//! again when proptest replays it to shrink it. Each incarnation still gets
//! an id never used before for the document, as the protocol requires
//! (except in [`Variant::ReusesWriterId`], which is the point of it).

use settings_sync_client::{Client, Error, LocalDocument};
use settings_sync_protocol::{
    Clock, Decision, Document, DocumentKey, Stamp, Value, Versioned, WriterId,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The protocol, as the client crate implements it.
    Protocol,
    /// Planted bug, the seed post's flicker: every reply replaces what the
    /// user sees, whatever its stamp.
    AdoptsEveryReply,
    /// Planted bug: a reset keeps the writer id, so the new incarnation
    /// reuses stamps of the old one for other content.
    ReusesWriterId,
}

/// What a browser keeps locally.
enum Local {
    Doc(LocalDocument),
    AdoptsEveryReply(Naive),
}

/// The planted flicker: the adopt rule without its stamp comparison.
struct Naive {
    writer: WriterId,
    clock: Clock,
    current: Option<Versioned>,
}

impl Naive {
    fn edit(&mut self, value: Value) -> Versioned {
        self.clock = self.clock.tick();
        let write = Versioned {
            value,
            stamp: Stamp::new(self.clock, self.writer.clone()),
        };
        self.current = Some(write.clone());
        write
    }

    fn observe(&mut self, remote: &Versioned) -> bool {
        self.clock = self.clock.max(remote.stamp.clock);
        let changed = self.current.as_ref() != Some(remote);
        self.current = Some(remote.clone());
        changed
    }
}

fn writer(index: usize, incarnation: u32) -> WriterId {
    WriterId::parse(format!("b{index}.{incarnation}")).expect("a valid writer id")
}

/// A new incarnation: nothing shown, clock 0.
fn fresh(variant: Variant, key: &DocumentKey, writer: &WriterId) -> Local {
    match variant {
        Variant::AdoptsEveryReply => Local::AdoptsEveryReply(Naive {
            writer: writer.clone(),
            clock: Clock::ZERO,
            current: None,
        }),
        _ => Local::Doc(LocalDocument::with_writer(key.clone(), writer.clone())),
    }
}

pub struct Browser {
    variant: Variant,
    key: DocumentKey,
    index: usize,
    incarnation: u32,
    /// Counts resets, including those that keep the writer id.
    generation: u32,
    local: Local,
    /// Replies that reached this browser's network stack but not the page
    /// yet; a reset drops them.
    pub held: Vec<Document>,
}

impl Browser {
    pub fn new(variant: Variant, key: DocumentKey, index: usize) -> Self {
        let local = fresh(variant, &key, &writer(index, 0));
        Browser {
            variant,
            key,
            index,
            incarnation: 0,
            generation: 0,
            local,
            held: Vec::new(),
        }
    }

    /// The browser's current writer id, e.g. `b0.1`.
    pub fn name(&self) -> String {
        writer(self.index, self.incarnation).to_string()
    }

    /// A reload: forgets everything and starts a new incarnation.
    pub fn reset(&mut self) {
        if self.variant != Variant::ReusesWriterId {
            self.incarnation += 1;
        }
        self.generation += 1;
        self.held.clear();
        self.local = fresh(
            self.variant,
            &self.key,
            &writer(self.index, self.incarnation),
        );
    }

    /// Which page load this is: a reply to a request of an earlier one
    /// never reaches this one.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// What the user sees.
    pub fn current(&self) -> Option<&Versioned> {
        match &self.local {
            Local::Doc(doc) => doc.current(),
            Local::AdoptsEveryReply(naive) => naive.current.as_ref(),
        }
    }

    /// A user's change, shown at once; returns the write.
    pub fn edit(&mut self, value: Value) -> Versioned {
        match &mut self.local {
            Local::Doc(doc) => doc.edit(value),
            Local::AdoptsEveryReply(naive) => naive.edit(value),
        }
    }

    /// A reply (or read) reaches the page. Returns whether what the user
    /// sees changed.
    pub fn observe(&mut self, document: &Document) -> bool {
        match &mut self.local {
            Local::Doc(doc) => doc.observe(document),
            Local::AdoptsEveryReply(naive) => naive.observe(&document.state),
        }
    }

    /// Sends what the user sees and takes in the reply, as
    /// `LocalDocument::sync` does (that is what runs for the client crate's
    /// variants). With nothing shown, reads instead.
    pub async fn sync(&mut self, client: &mut Client) -> Result<Option<Decision>, Error> {
        if let Local::Doc(doc) = &mut self.local {
            return doc.sync(client).await;
        }
        match self.current().cloned() {
            Some(write) => {
                let reply = client.sync(&self.key, &write).await?;
                self.observe(&reply.document);
                Ok(Some(reply.decision))
            }
            None => {
                if let Some(document) = client.get(&self.key).await? {
                    self.observe(&document);
                }
                Ok(None)
            }
        }
    }
}
