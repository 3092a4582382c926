//! The bridge's counters: what crossed, what was lost and why. Logged on
//! SIGUSR1 and at exit; losses are also logged when they happen.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter on its own cache line (two, for the adjacent-line
/// prefetcher): the exporter and the importer count every message, on
/// different threads, and counters packed together would make each
/// increment bounce the line between their cores (false sharing).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counter(AtomicU64);

impl std::ops::Deref for Counter {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// Counters shared by the export thread and the import callbacks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Local messages put to Zenoh.
    pub exported: Counter,
    /// Frames put to Zenoh (`--batch`; `exported / export_frames` is the
    /// mean number of messages per frame).
    pub export_frames: Counter,
    /// Local messages the exporter lost to `Lagged` (drop-oldest topics)
    /// before it could read them; sent on as a gap in the count.
    pub export_lagged: Counter,
    /// Local messages not exported because this bridge imported them.
    pub echo_skipped: Counter,
    /// Puts Zenoh refused (session closing).
    pub export_errors: Counter,
    /// Samples published into local topics.
    pub imported: Counter,
    /// Frames received and accepted (their messages count in `imported`).
    pub import_frames: Counter,
    /// Messages that never arrived, from gaps in the remote counts.
    pub import_lost: Counter,
    /// Samples dropped because the local topic stayed full past the bound.
    pub dropped_full: Counter,
    /// Samples larger than the local topic's `max_msg_size`.
    pub oversize: Counter,
    /// Samples whose key is no topic, or whose topic cannot be opened.
    pub bad_samples: Counter,
    /// Samples that came back to this bridge (its own origin).
    pub own_skipped: Counter,
    /// Samples with a count at or below one already seen.
    pub stale: Counter,
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
            "exported={} export_frames={} export_lagged={} echo_skipped={} export_errors={} imported={} import_frames={} import_lost={} dropped_full={} oversize={} bad_samples={} own_skipped={} stale={}",
            g(&self.exported),
            g(&self.export_frames),
            g(&self.export_lagged),
            g(&self.echo_skipped),
            g(&self.export_errors),
            g(&self.imported),
            g(&self.import_frames),
            g(&self.import_lost),
            g(&self.dropped_full),
            g(&self.oversize),
            g(&self.bad_samples),
            g(&self.own_skipped),
            g(&self.stale),
        )
    }
}
