//! A hang detector for calls that must return by their own timeout.
//!
//! A call is armed with a limit (its own timeout plus [`SLACK`]); one
//! background thread checks the armed calls every 100 ms and aborts the whole
//! process, naming the call, if one is still running past its limit. This is
//! not a duration assertion: the slack is seconds, far beyond any scheduling
//! noise, so only a real hang trips it. Aborting (rather than panicking in
//! the test thread) is the only way to stop a thread stuck inside the
//! library, and it makes the hang impossible to miss.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Added to a call's own timeout before it counts as hung.
pub const SLACK: Duration = Duration::from_secs(10);

struct Call {
    what: String,
    started: Instant,
    limit: Duration,
}

static ARMED: Mutex<BTreeMap<u64, Call>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static START: Once = Once::new();

fn armed() -> std::sync::MutexGuard<'static, BTreeMap<u64, Call>> {
    // A test thread that panicked while holding the lock (it never does: the
    // critical sections cannot panic) must not disable the detector.
    ARMED.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn watch() {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if let Some(c) = armed()
            .values()
            .find(|c| now.duration_since(c.started) > c.limit)
        {
            eprintln!(
                "HANG DETECTED: `{}` has been running for {:?}, past its timeout plus {:?} of slack; aborting the test process",
                c.what,
                now.duration_since(c.started),
                SLACK
            );
            std::process::abort();
        }
    }
}

/// An armed call; dropping it disarms.
#[must_use = "the call is watched only while the guard lives"]
pub struct Armed {
    id: u64,
}

impl Drop for Armed {
    fn drop(&mut self) {
        armed().remove(&self.id);
    }
}

/// Watches the call `what`, whose own timeout is `timeout` (zero for calls
/// that must not wait), until the returned guard is dropped.
pub fn arm(what: impl Into<String>, timeout: Duration) -> Armed {
    START.call_once(|| {
        std::thread::Builder::new()
            .name("hang-detector".into())
            .spawn(watch)
            .expect("spawn the hang detector thread");
    });
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    armed().insert(
        id,
        Call {
            what: what.into(),
            started: Instant::now(),
            limit: timeout + SLACK,
        },
    );
    Armed { id }
}
