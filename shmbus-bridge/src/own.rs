//! The sequence numbers this bridge published itself into local topics, so
//! that its exporter does not send imported messages back out.
//!
//! Why it is needed: a message on a shmbus topic carries no origin, so the
//! exporter, subscribed to a topic the importer also publishes into, would
//! see the imported message as a local one and export it again with its own
//! origin — two bridges in both directions would then echo forever. The
//! importer publishes through a loan, whose sequence number is known before
//! the commit makes it visible; it records that number here first, and the
//! exporter, reading the topic in sequence order, drops the message whose
//! number it finds at the front of the topic's queue. Recording before the
//! commit is what makes this race-free across the two threads.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Most numbers remembered per topic. Reached only if the exporter stops
/// reading a topic the importer keeps filling; the oldest are then
/// forgotten (and those messages, if ever read, are exported again).
const MAX_PER_TOPIC: usize = 1 << 16;

/// Per topic, the ascending sequence numbers the importer published.
#[derive(Debug, Default)]
pub struct OwnPublished {
    topics: Mutex<HashMap<String, VecDeque<u64>>>,
    /// Set by the first `record`, never cleared: until then the exporter
    /// skips the lock and the lookup (a bridge that imports no topic it
    /// exports never takes them).
    used: AtomicBool,
}

impl OwnPublished {
    /// Remembers that this bridge is about to publish `seq` into `topic`.
    pub fn record(&self, topic: &str, seq: u64) {
        // Before the number, and so before the commit that publishes the
        // message: an exporter that reads the message (Acquire on the slot,
        // pairing with the commit's Release) then sees the flag set.
        self.used.store(true, Ordering::Relaxed);
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let q = match topics.get_mut(topic) {
            Some(q) => q,
            None => topics.entry(topic.to_string()).or_default(),
        };
        if q.len() == MAX_PER_TOPIC {
            q.pop_front();
        }
        q.push_back(seq);
    }

    /// Whether `seq`, read from `topic`, is one this bridge published.
    /// Numbers below `seq` are forgotten: the reader has passed them.
    pub fn take_if_own(&self, topic: &str, seq: u64) -> bool {
        if !self.used.load(Ordering::Relaxed) {
            return false;
        }
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = topics.get_mut(topic) else {
            return false;
        };
        while q.front().is_some_and(|&s| s < seq) {
            q.pop_front();
        }
        if q.front() == Some(&seq) {
            q.pop_front();
            true
        } else {
            false
        }
    }

    /// Forgets a topic (it was closed: its numbers start again).
    pub fn forget(&self, topic: &str) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        topics.remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_numbers_are_recognised_in_order() {
        let own = OwnPublished::default();
        own.record("t", 3);
        own.record("t", 5);
        assert!(!own.take_if_own("t", 2));
        assert!(own.take_if_own("t", 3));
        assert!(!own.take_if_own("t", 4));
        assert!(own.take_if_own("t", 5));
        assert!(!own.take_if_own("t", 5));
        assert!(!own.take_if_own("u", 3));
        own.record("t", 9);
        // A reader that lagged past 9 forgets it.
        assert!(!own.take_if_own("t", 12));
        assert!(!own.take_if_own("t", 9));
    }
}
