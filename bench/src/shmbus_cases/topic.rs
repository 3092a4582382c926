//! A topic that exists for one case: created on the run's private bus with
//! the settings the case needs, unlinked when dropped.

use std::sync::atomic::{AtomicU32, Ordering};

use shmbus::daemon::{SegmentPerms, TopicOwner};
use shmbus::{Policy, TopicConfig};

/// An owned topic; `Drop` closes and unlinks its segments.
pub struct BenchTopic {
    owner: TopicOwner,
    name: String,
}

impl BenchTopic {
    /// Creates `<kind>-<n>` on `bus` with a `block` ring of `capacity` slots
    /// of `max_msg_size` bytes (every case wants every message delivered).
    pub fn create(
        bus: &str,
        kind: &str,
        capacity: u64,
        max_msg_size: usize,
    ) -> Result<BenchTopic, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("{kind}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let cfg = TopicConfig {
            capacity,
            max_msg_size: max_msg_size as u32,
            policy: Policy::Block,
            ..TopicConfig::default()
        };
        let owner = TopicOwner::create(bus, &name, &cfg, &SegmentPerms::default())
            .map_err(|e| format!("cannot create topic {name} on bus {bus}: {e}"))?;
        Ok(BenchTopic { owner, name })
    }

    /// The topic name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for BenchTopic {
    fn drop(&mut self) {
        self.owner.close();
        let _ = self.owner.unlink();
    }
}
