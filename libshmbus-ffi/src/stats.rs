//! `shmbus_topic_stats_t`: a snapshot of one topic's counters, as C reads
//! them (the per-subscriber rows of the Rust library are summed up: the
//! total delivered and lost, and the slowest subscriber's lag).

use shmbus::TopicStats;

use crate::options::{policy_to_c, shmbus_policy_t};

/// A snapshot of one topic (`shmbus_bus_topic_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct shmbus_topic_stats_t {
    /// Slots in the ring.
    pub capacity: u64,
    /// Largest message, in bytes.
    pub max_msg_size: u32,
    /// Overflow policy.
    pub policy: shmbus_policy_t,
    /// Bytes the topic reserves in /dev/shm.
    pub memory_bytes: u64,
    /// Publishers attached now.
    pub publishers: u32,
    /// Subscribers attached now.
    pub subscribers: u32,
    /// Sequence numbers handed out so far (the next message's sequence).
    pub published: u64,
    /// Publishes that found the ring full.
    pub blocked_publishes: u64,
    /// Slots abandoned (dropped loans, dead publishers).
    pub abandoned: u64,
    /// Dead publishers the daemon reclaimed.
    pub reaped_publishers: u64,
    /// Dead subscribers the daemon reclaimed.
    pub reaped_subscribers: u64,
    /// Messages delivered, summed over the attached subscribers.
    pub delivered: u64,
    /// Messages lost to laps (drop-oldest), summed over the attached
    /// subscribers.
    pub lost: u64,
    /// Unread messages of the slowest attached subscriber.
    pub max_lag: u64,
    /// Whether the topic was closed.
    pub closed: bool,
}

impl shmbus_topic_stats_t {
    /// The C snapshot of the library's stats.
    pub fn from_rust(s: &TopicStats) -> shmbus_topic_stats_t {
        let subs = &s.subscriber_stats;
        shmbus_topic_stats_t {
            capacity: s.capacity,
            max_msg_size: s.max_msg_size,
            policy: policy_to_c(s.policy),
            memory_bytes: s.memory_bytes,
            publishers: s.publishers,
            subscribers: s.subscribers,
            published: s.published,
            blocked_publishes: s.blocked_publishes,
            abandoned: s.abandoned,
            reaped_publishers: s.reaped_publishers,
            reaped_subscribers: s.reaped_subscribers,
            // The counters wrap in shared memory; so do their sums.
            delivered: subs.iter().fold(0u64, |a, r| a.wrapping_add(r.delivered)),
            lost: subs.iter().fold(0u64, |a, r| a.wrapping_add(r.lost)),
            max_lag: subs.iter().map(|r| r.lag).max().unwrap_or(0),
            closed: s.closed,
        }
    }
}
