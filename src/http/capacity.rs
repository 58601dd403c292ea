//! Bounds on what clients may hold at once: open connections, streams
//! (followers of output, event subscribers) and uploads in progress. Past a
//! bound a request gets a clear 503 rather than taking the daemon's file
//! descriptors or memory from everyone else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A count of something held, and its most.
#[derive(Debug)]
pub struct Capacity {
    /// What is counted, for messages: "connections".
    what: &'static str,
    /// The config key that sets `max`, for messages.
    key: &'static str,
    max: usize,
    used: AtomicUsize,
}

/// One unit of a [`Capacity`], given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Capacity>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Capacity {
    /// At most `max` of `what` at once, set by config key `key`.
    pub fn new(what: &'static str, key: &'static str, max: usize) -> Arc<Capacity> {
        Arc::new(Capacity {
            what,
            key,
            max,
            used: AtomicUsize::new(0),
        })
    }

    /// Takes a slot, or `None` when all are taken.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        let taken = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Slot(self.clone()))
    }

    /// How many are held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Why a request was refused: the sentence of its 503.
    pub fn refusal(&self) -> String {
        format!(
            "the daemon holds its most {} ({}, config {}); try again when some have closed",
            self.what, self.max, self.key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back_when_dropped() {
        let c = Capacity::new("streams", "max_streams", 2);
        let a = c.take().unwrap();
        let _b = c.take().unwrap();
        assert!(c.take().is_none());
        drop(a);
        assert_eq!(c.used(), 1);
        assert!(c.take().is_some());
        assert!(c.refusal().contains("max_streams"));
    }
}
