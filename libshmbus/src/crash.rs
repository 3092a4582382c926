//! Named crash points: every step of the ring protocol (claim, write,
//! commit, abandon, receive, park, attach, detach), of the reaper, and of a
//! service call and its reply calls [`point`] with the step's name, so that
//! tests can kill a process — or stop a model-checked thread for ever — at
//! *every* step, not at a few chosen ones.
//!
//! Three builds:
//! * **normal** (no feature): [`point`] is an empty inline function; the
//!   points cost nothing.
//! * **`crash-points` feature** (tests only; never in a release build of the
//!   daemon or the benchmark): a process started with
//!   `SHMBUS_CRASH_AT=<point>:<n>` SIGKILLs itself at the `n`-th hit (from 1)
//!   of that point. `SHMBUS_CRASH_AT=<point>:<n>:stop` SIGSTOPs itself there
//!   instead (a rival paused at its worst moment). The driver is
//!   `tests/tests/crash_points.rs`; it runs every point in [`POINTS`],
//!   each in the process of its [`role`].
//! * **loom**: a model thread given a plan with [`die_at`] stops for ever
//!   (unwinds out of the protocol with [`Died`], caught by the model's
//!   [`run_until_death`]) at the `n`-th hit of a point: the death models in
//!   `loom_model.rs` enumerate every point of [`POINTS`] that way.

/// Every crash point, in protocol order. A test checks each one is called
/// somewhere in the source, and the crash driver runs each one.
#[cfg_attr(not(any(test, feature = "crash-points")), allow(dead_code))]
pub const POINTS: &[&str] = &[
    // publisher: claim, write, commit, abandon
    "claim.intent",
    "claim.cas",
    "claim.won",
    "write.begin",
    "write.payload",
    "commit.stamp",
    "commit.clear",
    "commit.notify",
    "abandon.stamp",
    // subscriber: read and consume
    "recv.peek",
    "recv.copy",
    "recv.consume",
    "recv.notify",
    // waiting
    "park.prepare",
    // attach and detach
    "attach.pub",
    "attach.sub.entry",
    "attach.sub.start",
    "detach.pub",
    "detach.sub.retiring",
    "detach.sub.notify",
    // the reaper
    "reap.retiring",
    "reap.abandon",
    "reap.wake",
    "reap.free",
    // a client attaching through the daemon: its answer is in, the
    // segments are not mapped yet
    "attach.announced",
    // the daemon creating a topic that a pattern subscription matches: the
    // entry is held for it, the announcement not yet sent
    "birth.reserved",
    // a pattern subscriber: an announced entry received, not yet adopted
    "birth.adopt",
    // a service client: one call
    "call.begin",
    "call.claim",
    "call.write",
    "call.publish",
    "call.notify",
    "call.reply",
    "call.release",
    // a service server: taking a request, replying
    "serve.take",
    "serve.claim",
    "serve.copy",
    "serve.begin",
    "serve.write",
    "serve.finish",
    "serve.notify",
    "serve.free",
];

/// Which process passes a crash point, so the driver and the death models
/// know whom to kill there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A publisher: claim, write, commit, abandon, its attach and detach.
    Publisher,
    /// A subscriber: receive, park, its attach and detach.
    Subscriber,
    /// Whoever reaps a dead entry (the daemon, or a client taking it over).
    Reaper,
    /// A service's client: one call, from its request to taking the reply.
    ServiceClient,
    /// A service's server: taking a request, replying, freeing the cell.
    ServiceServer,
    /// A client attaching through the daemon, between the daemon's answer
    /// and the mapping (nothing is held there: the segment-identity tests
    /// pause it to swap the files under it).
    Attacher,
    /// The daemon creating a topic that a pattern subscription matches.
    Daemon,
    /// A pattern subscriber taking over an entry held for it at a topic's
    /// birth.
    PatternSubscriber,
}

/// The role of `point`, by its name; `None` for a name no role claims (a
/// test keeps every point of [`POINTS`] claimed).
pub fn role(point: &str) -> Option<Role> {
    match point.split('.').collect::<Vec<_>>().as_slice() {
        ["claim" | "write" | "commit" | "abandon", ..] | ["attach" | "detach", "pub"] => {
            Some(Role::Publisher)
        }
        ["recv" | "park", ..] | ["attach" | "detach", "sub", ..] => Some(Role::Subscriber),
        ["reap", ..] => Some(Role::Reaper),
        ["attach", "announced"] => Some(Role::Attacher),
        ["birth", "reserved"] => Some(Role::Daemon),
        ["birth", "adopt"] => Some(Role::PatternSubscriber),
        ["call", ..] => Some(Role::ServiceClient),
        ["serve", ..] => Some(Role::ServiceServer),
        _ => None,
    }
}

/// The points of one role, in protocol order (used by the loom death models
/// and, through the `crash-points` feature, by the crash driver).
#[cfg_attr(not(any(loom, feature = "crash-points")), allow(dead_code))]
pub fn points_of(r: Role) -> impl Iterator<Item = &'static str> {
    POINTS.iter().copied().filter(move |&p| role(p) == Some(r))
}

/// Marks a step of the protocol; see the module doc.
#[inline(always)]
pub(crate) fn point(name: &'static str) {
    #[cfg(loom)]
    imp_loom::hit(name);
    #[cfg(all(not(loom), feature = "crash-points"))]
    imp_process::hit(name);
    #[cfg(not(any(loom, feature = "crash-points")))]
    let _ = name;
}

#[cfg(all(not(loom), feature = "crash-points"))]
mod imp_process {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;

    struct Plan {
        point: String,
        at: u32,
        stop: bool,
        hits: AtomicU32,
    }

    fn plan() -> Option<&'static Plan> {
        static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
        PLAN.get_or_init(|| {
            let v = std::env::var("SHMBUS_CRASH_AT").ok()?;
            let mut parts = v.split(':');
            let point = parts.next()?.to_string();
            let at = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1);
            let stop = parts.next() == Some("stop");
            Some(Plan {
                point,
                at,
                stop,
                hits: AtomicU32::new(0),
            })
        })
        .as_ref()
    }

    pub(super) fn hit(name: &'static str) {
        let Some(p) = plan() else { return };
        if p.point != name || p.hits.fetch_add(1, Ordering::Relaxed) + 1 != p.at {
            return;
        }
        let sig = if p.stop { libc::SIGSTOP } else { libc::SIGKILL };
        // SAFETY: raise(2) has no memory-safety preconditions.
        unsafe { libc::raise(sig) };
    }
}

/// The payload a model thread unwinds with when it reaches its death.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Died;

#[cfg(loom)]
mod imp_loom {
    use std::cell::Cell;

    // Loom's threads are coroutines on one OS thread: a plan must be local
    // to the model thread, not to the OS thread.
    loom::thread_local! {
        static PLAN: Cell<Option<(&'static str, u32)>> = Cell::new(None);
    }

    pub(super) fn hit(name: &'static str) {
        PLAN.with(|p| {
            if let Some((point, left)) = p.get() {
                if point == name {
                    if left <= 1 {
                        p.set(None);
                        std::panic::resume_unwind(Box::new(super::Died));
                    }
                    p.set(Some((point, left - 1)));
                }
            }
        });
    }

    pub(super) fn set(plan: Option<(&'static str, u32)>) {
        PLAN.with(|p| p.set(plan));
    }
}

/// Plans this model thread's death at the `n`-th hit (from 1) of `point`.
#[cfg(loom)]
pub(crate) fn die_at(point: &'static str, n: u32) {
    imp_loom::set(Some((point, n)));
}

/// Runs `f` in a model thread that may die at its planned point: `Some`
/// with its result if it lived, `None` if it died there (the thread then
/// did nothing more, as a SIGKILLed process does nothing more).
#[cfg(loom)]
pub(crate) fn run_until_death<T>(f: impl FnOnce() -> T) -> Option<T> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    imp_loom::set(None);
    match r {
        Ok(v) => Some(v),
        Err(e) if e.is::<Died>() => None,
        Err(e) => std::panic::resume_unwind(e),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// Every listed point is called in the source, and every point called
    /// is listed: the enumeration is the code's, not a chosen sample.
    #[test]
    fn every_point_is_called_and_listed() {
        let sources = [
            include_str!("ring.rs"),
            include_str!("bus.rs"),
            include_str!("wait.rs"),
            include_str!("service/client.rs"),
            include_str!("service/server.rs"),
            include_str!("topic.rs"),
            include_str!("subscriber.rs"),
        ];
        let called: std::collections::BTreeSet<&str> = sources
            .iter()
            .flat_map(|src| src.split("point(\"").skip(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let listed: std::collections::BTreeSet<&str> = super::POINTS.iter().copied().collect();
        assert_eq!(called, listed);
    }

    #[test]
    fn every_crash_point_has_a_role() {
        for p in super::POINTS {
            assert!(super::role(p).is_some(), "crash point `{p}` has no role");
        }
    }
}
