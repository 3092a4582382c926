//! CPU pinning: the two sides of every case run on two different cores.
//!
//! Cross-core numbers are what a real deployment sees (a publisher and a
//! subscriber are separate processes the scheduler spreads out), and pinning
//! keeps the scheduler from moving a spinning side onto its peer's core,
//! which would turn a 100 ns hand-over into a time slice.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The two cores a case uses: the parent (measuring) side and the child side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorePair {
    /// Core of the parent process (publisher / pinger).
    pub parent: usize,
    /// Core of the child process(es) (subscriber / ponger).
    pub child: usize,
}

/// Picks two distinct cores this process may run on, the first two of its
/// affinity mask (cores 0 and 1 on a plain two-core machine). `None` when the
/// mask allows a single core, in which case nothing is pinned and every
/// spinning case degenerates to time slicing; the report says so.
pub fn pick_cores() -> Option<CorePair> {
    let set = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let mut allowed = (0..CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false));
    let parent = allowed.next()?;
    let child = allowed.next()?;
    Some(CorePair { parent, child })
}

/// Pins the calling thread (and so a single-threaded process) to `cpu`.
pub fn pin_current(cpu: usize) -> Result<(), String> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .map_err(|e| format!("cannot pin to core {cpu}: {e}"))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| format!("cannot pin to core {cpu}: sched_setaffinity failed: {e}"))
}

/// The calling thread's affinity mask, to restore after a run so that a
/// process embedding the benchmark (the `shmbus` CLI) is not left pinned.
pub struct SavedAffinity(Option<CpuSet>);

impl SavedAffinity {
    /// Remembers the current mask.
    pub fn save() -> SavedAffinity {
        SavedAffinity(sched_getaffinity(Pid::from_raw(0)).ok())
    }
}

impl Drop for SavedAffinity {
    fn drop(&mut self) {
        if let Some(set) = &self.0 {
            // Best effort: failing to widen the mask again only affects
            // scheduling of the embedding process, never correctness.
            let _ = sched_setaffinity(Pid::from_raw(0), set);
        }
    }
}
