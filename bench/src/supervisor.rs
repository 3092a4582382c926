//! The parent side of a case: create the control region, start the child
//! processes, wait until they are set up, and make sure a case can never
//! hang the run.
//!
//! Every child is watched by a thread blocked in `waitpid` (it costs nothing
//! while it sleeps, so it does not disturb the measurement): if a child dies
//! with an error while the parent is still measuring, the parent may be
//! blocked forever on a reply that will not come, so the watcher reports the
//! failure, removes every registered kernel object and exits the process. A
//! deadline thread does the same for a case that stops making progress (a
//! lost wake-up). Children die with the parent (PR_SET_PDEATHSIG).

use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::affinity::CorePair;
use crate::cleanup;
use crate::control::{Control, MAX_CHILDREN};
use crate::region::SharedRegion;
use crate::role::{ChildSpec, Role, CHILD_ENV};

/// Settings shared by every case of a run.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Cores for the parent and the children, if the machine has two.
    pub cores: Option<CorePair>,
    /// Longest one repetition of a case may take before the run gives up.
    pub deadline: Duration,
}

/// A running case: its control region and its child processes.
pub struct Session {
    label: String,
    region: SharedRegion,
    pids: Vec<i32>,
    waiters: Vec<JoinHandle<std::io::Result<ExitStatus>>>,
    finishing: Arc<AtomicBool>,
    deadline: Arc<(Mutex<bool>, Condvar)>,
    deadline_thread: Option<JoinHandle<()>>,
}

impl Session {
    /// Creates the control region, starts one child per role (pinned to the
    /// child core) and returns once all of them have called `mark_ready`.
    pub fn start(ctx: &Ctx, label: &str, roles: Vec<Role>) -> Result<Session, String> {
        if roles.len() > MAX_CHILDREN {
            return Err(format!(
                "case {label} wants {} children, at most {MAX_CHILDREN}",
                roles.len()
            ));
        }
        let region = SharedRegion::create(Control::SIZE)?;
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the current executable to start a child: {e}"))?;
        let finishing = Arc::new(AtomicBool::new(false));
        let mut session = Session {
            label: label.to_string(),
            region,
            pids: Vec::new(),
            waiters: Vec::new(),
            finishing: finishing.clone(),
            deadline: Arc::new((Mutex::new(false), Condvar::new())),
            deadline_thread: None,
        };
        let n = roles.len();
        for (index, role) in roles.into_iter().enumerate() {
            let spec = ChildSpec {
                parent_pid: std::process::id(),
                region: session.region.name().to_string(),
                index,
                cpu: ctx.cores.map(|c| c.child),
                role,
            };
            let json = serde_json::to_string(&spec)
                .map_err(|e| format!("cannot encode child spec: {e}"))?;
            let mut child = Command::new(&exe)
                .env(CHILD_ENV, json)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start a child process for case {label}: {e}"))?;
            session.pids.push(child.id() as i32);
            let label = label.to_string();
            let finishing = finishing.clone();
            session.waiters.push(std::thread::spawn(move || {
                let status = child.wait();
                let failed = !matches!(&status, Ok(s) if s.success());
                if failed && !finishing.load(Ordering::Acquire) {
                    abort_run(&format!(
                        "the child process of case `{label}` failed ({}) while the case was running",
                        describe(&status)
                    ));
                }
                status
            }));
        }
        session.start_deadline(ctx.deadline);
        let control = Control::of(&session.region);
        while (control.ready_count() as usize) < n {
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(session)
    }

    fn start_deadline(&mut self, limit: Duration) {
        let deadline = self.deadline.clone();
        let pids = self.pids.clone();
        let label = self.label.clone();
        self.deadline_thread = Some(std::thread::spawn(move || {
            let (lock, cv) = &*deadline;
            let done = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (done, _) = cv
                .wait_timeout_while(done, limit, |done| !*done)
                .unwrap_or_else(|e| e.into_inner());
            if !*done {
                for pid in &pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                abort_run(&format!(
                    "case `{label}` did not finish within {} s: one side stopped making progress (a lost wake-up?)",
                    limit.as_secs()
                ));
            }
        }));
    }

    /// The case's control block.
    pub fn control(&self) -> &Control {
        Control::of(&self.region)
    }

    /// Waits until every child reported its result (`ChildResult::finish`).
    pub fn wait_results(&self, children: usize) {
        let control = self.control();
        while !(0..children).all(|i| control.result(i).is_done()) {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Waits for every child to exit; an error if any failed.
    pub fn finish(mut self) -> Result<(), String> {
        self.finishing.store(true, Ordering::Release);
        let mut first_error = None;
        for w in std::mem::take(&mut self.waiters) {
            let status = w
                .join()
                .map_err(|_| "a child watcher thread panicked".to_string())?;
            if !matches!(&status, Ok(s) if s.success()) && first_error.is_none() {
                first_error = Some(format!(
                    "the child process of case `{}` failed ({})",
                    self.label,
                    describe(&status)
                ));
            }
        }
        self.stop_deadline();
        first_error.map_or(Ok(()), Err)
    }

    /// Kills the children (the parent side failed) and waits for them.
    pub fn abandon(mut self) {
        self.finishing.store(true, Ordering::Release);
        for pid in &self.pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for w in std::mem::take(&mut self.waiters) {
            let _ = w.join();
        }
        self.stop_deadline();
    }

    fn stop_deadline(&mut self) {
        let (lock, cv) = &*self.deadline;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.deadline_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Reached without finish/abandon only when the parent side returned
        // early with an error: do not leave children behind.
        if !self.waiters.is_empty() {
            self.finishing.store(true, Ordering::Release);
            for pid in &self.pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            for w in std::mem::take(&mut self.waiters) {
                let _ = w.join();
            }
        }
        self.stop_deadline();
    }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("cannot wait for it: {e}"),
    }
}

/// Gives up the whole run: the parent may be blocked on a peer that is gone,
/// so there is no caller to return an error to.
fn abort_run(msg: &str) -> ! {
    eprintln!("shmbus-bench: {msg}; giving up (run the case alone with --only to see more)");
    cleanup::release_all();
    std::process::exit(1);
}
