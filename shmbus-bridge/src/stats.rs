//! The bridge's counters: what crossed, what was lost and why. Logged on
//! SIGUSR1 and at exit; losses are also logged when they happen.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by the export and import threads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Local messages put to Zenoh.
    pub exported: AtomicU64,
    /// Local messages the exporter lost to `Lagged` (drop-oldest topics)
    /// before it could read them; sent on as a gap in the count.
    pub export_lagged: AtomicU64,
    /// Local messages not exported because this bridge imported them.
    pub echo_skipped: AtomicU64,
    /// Puts Zenoh refused (session closing).
    pub export_errors: AtomicU64,
    /// Samples published into local topics.
    pub imported: AtomicU64,
    /// Messages that never arrived, from gaps in the remote counts.
    pub import_lost: AtomicU64,
    /// Samples dropped because the local topic stayed full past the bound.
    pub dropped_full: AtomicU64,
    /// Samples larger than the local topic's `max_msg_size`.
    pub oversize: AtomicU64,
    /// Samples whose key is no topic, or whose topic cannot be opened.
    pub bad_samples: AtomicU64,
    /// Samples that came back to this bridge (its own origin).
    pub own_skipped: AtomicU64,
    /// Samples with a count at or below one already seen.
    pub stale: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// One line with every counter.
    pub fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "exported={} export_lagged={} echo_skipped={} export_errors={} imported={} import_lost={} dropped_full={} oversize={} bad_samples={} own_skipped={} stale={}",
            g(&self.exported),
            g(&self.export_lagged),
            g(&self.echo_skipped),
            g(&self.export_errors),
            g(&self.imported),
            g(&self.import_lost),
            g(&self.dropped_full),
            g(&self.oversize),
            g(&self.bad_samples),
            g(&self.own_skipped),
            g(&self.stale),
        )
    }
}
