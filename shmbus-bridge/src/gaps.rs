//! Gap detection on import, per (origin, topic), from the tag of each
//! sample (see [`crate::tag`]).
//!
//! * Within one exporter instance the running `count` must go up by exactly
//!   one per sample; a jump is a loss of exactly that many messages.
//! * When a new instance of the same origin appears (the exporting bridge
//!   was restarted), its count starts again, so the sequence numbers of the
//!   exporting bus are compared instead: the last one seen from the old
//!   instance and the first from the new one. Everything between is
//!   counted as lost — the messages published while no bridge ran, and
//!   those the old one had not sent yet. Sequence numbers that carried no
//!   message a bridge would have sent (slots abandoned by dead publishers,
//!   messages the old bridge had itself imported) count too: across a
//!   restart the bridge cannot tell them apart, so the count may be high,
//!   never low.
//! * A new instance whose first sequence number is not above the last one
//!   seen means the topic (or the whole bus) was created again on the
//!   remote host: its numbering restarted, and nothing can be said about
//!   loss; the sample starts a new baseline.

use std::collections::HashMap;

/// What one sample's tag says against the last one seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The first sample of this origin on this topic: the baseline.
    First,
    /// The next one, as expected.
    InOrder,
    /// `n` messages before this one never arrived (same instance: exact).
    Gap(u64),
    /// The origin's bridge was restarted; `lost` sequence numbers lie
    /// between the last sample of the old instance and this one.
    Restarted {
        /// Messages lost across the restart (0 when none).
        lost: u64,
    },
    /// The origin's bridge was restarted and the topic's numbering started
    /// again (re-created): a new baseline, loss unknown.
    Renumbered,
    /// A count at or below the last one of the same instance (a duplicate or
    /// a reordering, which Zenoh's reliable channels do not produce): not
    /// delivered, so that order is kept.
    Stale,
}

/// The last sample seen of one (origin, topic).
#[derive(Clone, Copy, Debug)]
struct Last {
    instance: u64,
    count: u64,
    seq: u64,
}

/// Last sample seen per origin and topic.
#[derive(Debug, Default)]
pub struct GapTracker {
    last: HashMap<u64, HashMap<String, Last>>,
}

impl GapTracker {
    /// Records a sample of `topic` from `origin` and says how it follows.
    pub fn observe(
        &mut self,
        origin: u64,
        instance: u64,
        topic: &str,
        count: u64,
        seq: u64,
    ) -> Observed {
        let now = Last {
            instance,
            count,
            seq,
        };
        let topics = self.last.entry(origin).or_default();
        // Looked up by `&str`: the common case allocates nothing.
        let Some(last) = topics.get_mut(topic) else {
            topics.insert(topic.to_string(), now);
            return Observed::First;
        };
        if last.instance != instance {
            let before = *last;
            *last = now;
            return if seq > before.seq {
                Observed::Restarted {
                    lost: seq - before.seq - 1,
                }
            } else {
                Observed::Renumbered
            };
        }
        if count <= last.count {
            return Observed::Stale;
        }
        let gap = count - last.count - 1;
        *last = now;
        if gap == 0 {
            Observed::InOrder
        } else {
            Observed::Gap(gap)
        }
    }

    /// Records a frame (`--batch`): its first message is observed as one
    /// sample; unless stale, the frame's last message becomes the last one
    /// seen.
    pub fn observe_frame(
        &mut self,
        origin: u64,
        instance: u64,
        topic: &str,
        first: (u64, u64),
        last: (u64, u64),
    ) -> Observed {
        let seen = self.observe(origin, instance, topic, first.0, first.1);
        if seen != Observed::Stale {
            if let Some(l) = self.last.get_mut(&origin).and_then(|t| t.get_mut(topic)) {
                l.count = last.0;
                l.seq = last.1;
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_counted_per_origin_and_topic() {
        let mut g = GapTracker::default();
        assert_eq!(g.observe(1, 9, "a", 10, 100), Observed::First);
        assert_eq!(g.observe(1, 9, "a", 11, 101), Observed::InOrder);
        // Within an instance the count decides, not the sequence number
        // (104 could be an abandoned slot).
        assert_eq!(g.observe(1, 9, "a", 12, 104), Observed::InOrder);
        assert_eq!(g.observe(1, 9, "a", 15, 107), Observed::Gap(2));
        assert_eq!(g.observe(1, 9, "a", 15, 107), Observed::Stale);
        assert_eq!(g.observe(1, 9, "a", 3, 95), Observed::Stale);
        assert_eq!(g.observe(1, 9, "a", 16, 108), Observed::InOrder);
        assert_eq!(g.observe(2, 5, "a", 0, 0), Observed::First);
        assert_eq!(g.observe(1, 9, "b", 100, 7), Observed::First);
    }

    #[test]
    fn frames_count_as_their_messages() {
        let mut g = GapTracker::default();
        assert_eq!(
            g.observe_frame(1, 9, "a", (0, 10), (4, 16)),
            Observed::First
        );
        assert_eq!(
            g.observe_frame(1, 9, "a", (5, 17), (5, 17)),
            Observed::InOrder
        );
        // Counts 6 and 7 never arrived.
        assert_eq!(
            g.observe_frame(1, 9, "a", (8, 20), (9, 21)),
            Observed::Gap(2)
        );
        assert_eq!(
            g.observe_frame(1, 9, "a", (9, 21), (12, 24)),
            Observed::Stale
        );
        // A stale frame moved nothing; single samples and frames mix.
        assert_eq!(g.observe(1, 9, "a", 10, 22), Observed::InOrder);
        // A restart compares with the last message of the last frame.
        assert_eq!(
            g.observe_frame(1, 8, "a", (0, 30), (1, 31)),
            Observed::Restarted { lost: 7 }
        );
    }

    #[test]
    fn a_restart_counts_the_sequence_gap() {
        let mut g = GapTracker::default();
        assert_eq!(g.observe(1, 9, "a", 0, 40), Observed::First);
        assert_eq!(g.observe(1, 9, "a", 1, 41), Observed::InOrder);
        // New instance: its count starts again; 42..=46 were never sent.
        assert_eq!(g.observe(1, 8, "a", 0, 47), Observed::Restarted { lost: 5 });
        assert_eq!(g.observe(1, 8, "a", 1, 48), Observed::InOrder);
        assert_eq!(g.observe(1, 7, "a", 0, 49), Observed::Restarted { lost: 0 });
        // The topic was re-created over there: numbering starts again.
        assert_eq!(g.observe(1, 6, "a", 0, 0), Observed::Renumbered);
        assert_eq!(g.observe(1, 6, "a", 1, 1), Observed::InOrder);
        // Other origins and topics are untouched.
        assert_eq!(g.observe(1, 6, "b", 0, 3), Observed::First);
    }
}
