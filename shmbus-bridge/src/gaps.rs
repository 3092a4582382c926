//! Gap detection on import: the running `count` of each (origin, topic)
//! (see [`crate::tag`]) must go up by exactly one per sample; a jump is a
//! loss of exactly that many messages.

use std::collections::HashMap;

/// What one sample's count says against the last one seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The first sample of this origin on this topic: the baseline.
    First,
    /// The next one, as expected.
    InOrder,
    /// `n` messages before this one never arrived.
    Gap(u64),
    /// A count at or below the last one (a duplicate or a reordering, which
    /// Zenoh's reliable channels do not produce): not delivered, so that
    /// order is kept.
    Stale,
}

/// Last count seen per (origin, topic).
#[derive(Debug, Default)]
pub struct GapTracker {
    last: HashMap<(u64, String), u64>,
}

impl GapTracker {
    /// Records `count` for (`origin`, `topic`) and says how it follows.
    pub fn observe(&mut self, origin: u64, topic: &str, count: u64) -> Observed {
        // Look up by reference first: the common case allocates nothing.
        let key = (origin, topic.to_string());
        match self.last.get_mut(&key) {
            None => {
                self.last.insert(key, count);
                Observed::First
            }
            Some(last) if count <= *last => Observed::Stale,
            Some(last) => {
                let gap = count - *last - 1;
                *last = count;
                if gap == 0 {
                    Observed::InOrder
                } else {
                    Observed::Gap(gap)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_counted_per_origin_and_topic() {
        let mut g = GapTracker::default();
        assert_eq!(g.observe(1, "a", 10), Observed::First);
        assert_eq!(g.observe(1, "a", 11), Observed::InOrder);
        assert_eq!(g.observe(1, "a", 15), Observed::Gap(3));
        assert_eq!(g.observe(1, "a", 15), Observed::Stale);
        assert_eq!(g.observe(1, "a", 3), Observed::Stale);
        assert_eq!(g.observe(1, "a", 16), Observed::InOrder);
        assert_eq!(g.observe(2, "a", 0), Observed::First);
        assert_eq!(g.observe(1, "b", 100), Observed::First);
    }
}
