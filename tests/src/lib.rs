//! Harness for the end-to-end tests in `tests/tests/`: each test gets its own
//! bus name and runtime directory, starts the real `shmbusd`, runs the real
//! `shmbus` CLI, and cleans `/dev/shm` afterwards, so tests run in parallel
//! without touching each other.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which
//! the README's test command does); [`bin`] says so if they are missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Path of a workspace binary (`shmbusd`, `shmbus`) in the target directory
/// of the current profile.
pub fn bin(name: &str) -> PathBuf {
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (the README's test command does)",
        path.display()
    );
    path
}

/// A bus name unique to this test process and call.
pub fn unique_bus(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("t{}-{}-{}", std::process::id(), n, tag)
}

/// One test's bus: a unique name and a private runtime directory. Dropping it
/// kills a daemon still running and removes the bus's segments.
pub struct TestBus {
    /// The bus name.
    pub name: String,
    /// The private runtime directory (socket, lock).
    pub runtime_dir: PathBuf,
    _dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl TestBus {
    /// A new bus; no daemon yet.
    pub fn new(tag: &str) -> TestBus {
        let dir = tempfile::Builder::new()
            .prefix("shmbus-test-")
            .tempdir()
            .expect("tempdir");
        let runtime_dir = dir.path().join("run");
        TestBus {
            name: unique_bus(tag),
            runtime_dir,
            _dir: dir,
            daemon: None,
        }
    }

    /// The temporary directory of this test (for config files and outputs).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// A `shmbusd` command for this bus (not started).
    pub fn daemon_command(&self) -> Command {
        let mut cmd = Command::new(bin("shmbusd"));
        cmd.arg("--bus")
            .arg(&self.name)
            .arg("--runtime-dir")
            .arg(&self.runtime_dir)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `shmbusd` with extra arguments and waits until its socket
    /// answers. The daemon's stderr goes to the test's stderr.
    pub fn start_daemon_with(&mut self, args: &[&str]) -> &mut Child {
        assert!(self.daemon.is_none(), "daemon already started");
        let child = self
            .daemon_command()
            .args(args)
            .spawn()
            .expect("spawn shmbusd");
        self.daemon = Some(child);
        self.wait_ready();
        self.daemon.as_mut().unwrap()
    }

    /// Starts `shmbusd` on built-in defaults.
    pub fn start_daemon(&mut self) -> &mut Child {
        self.start_daemon_with(&[])
    }

    /// The running daemon's process, if any.
    pub fn daemon(&mut self) -> Option<&mut Child> {
        self.daemon.as_mut()
    }

    /// Takes the daemon's `Child` out (the test then owns its fate).
    pub fn take_daemon(&mut self) -> Option<Child> {
        self.daemon.take()
    }

    /// SIGKILLs the daemon and reaps it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (bounded) until the control socket accepts connections.
    pub fn wait_ready(&mut self) {
        let sock = shmbus::names::socket_path(&self.runtime_dir, &self.name);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return;
            }
            if let Some(child) = self.daemon.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("shmbusd exited early with {status}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "shmbusd did not open {} within 20 s",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A `shmbus` CLI command for this bus.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(bin("shmbus"));
        cmd.arg("--bus")
            .arg(&self.name)
            .arg("--runtime-dir")
            .arg(&self.runtime_dir);
        cmd
    }

    /// Names of this bus's files in /dev/shm.
    pub fn shm_files(&self) -> Vec<String> {
        shm_files_of(&self.name)
    }
}

/// Names of the files of `bus` in /dev/shm.
pub fn shm_files_of(bus: &str) -> Vec<String> {
    let prefix = shmbus::names::bus_segment_prefix(bus);
    let mut out: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

impl Drop for TestBus {
    fn drop(&mut self) {
        self.kill_daemon();
        for f in self.shm_files() {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(f));
        }
    }
}

/// Waits (bounded by `limit`) until `cond` holds; returns whether it did.
/// For readiness only: tests never assert how long something took.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The state letter of a process in /proc/PID/stat (`T`: stopped), or `?`
/// if it cannot be read (the process is gone).
pub fn process_state(pid: u32) -> char {
    stat_state(format!("/proc/{pid}/stat"))
}

/// The state letter of a `stat` file of /proc (after the command name in
/// parentheses), `?` if it cannot be read.
fn stat_state(path: impl AsRef<std::path::Path>) -> char {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|stat| {
            let after = stat.rfind(')')? + 2;
            stat.get(after..)?.chars().next()
        })
        .unwrap_or('?')
}

/// Whether every thread of process `pid` is stopped (state `T` in each
/// /proc/PID/task/TID/stat). `kill(SIGSTOP)` returns before the threads
/// have stopped; a test that needs the process still must wait for this.
pub fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        if stat_state(task.path().join("stat")) != 'T' {
            return false;
        }
        any = true;
    }
    any
}

/// Sends a signal to a child process.
pub fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).expect("kill");
}

/// Waits for a child with a bound; kills it and panics if it does not exit.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- Helpers for the CLI tests (tests/tests/cli_*.rs) ----

/// Runs `cmd` to completion with `input` on its stdin, capturing stdout and
/// stderr. Kills it and panics if it does not exit within `limit`.
pub fn run_with_input(cmd: &mut Command, input: &[u8], limit: Duration) -> std::process::Output {
    use std::io::{Read, Write};
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Writing and reading happen on threads so that a child that fills its
    // stdout pipe before draining stdin cannot deadlock the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let status = wait_exit(&mut child, limit);
    let _ = writer.join();
    std::process::Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Lines read from `r` (a child's stdout) on a thread, so that a test can
/// wait for the next one with a bound (`recv_timeout`) instead of hanging.
pub fn line_channel(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

impl TestBus {
    /// A library connection to this bus, for readiness checks.
    pub fn client(&self) -> shmbus::Bus {
        shmbus::Bus::connect_with(&shmbus::BusOptions {
            name: self.name.clone(),
            runtime_dir: Some(self.runtime_dir.clone()),
        })
        .expect("connect to the test bus")
    }

    /// Waits (bounded) until `topic` exists and has at least `n` live
    /// subscribers, so that what is published next reaches them.
    pub fn wait_subscribers(&self, topic: &str, n: u32) {
        let bus = self.client();
        let ready = wait_until(Duration::from_secs(20), || {
            bus.topics()
                .map(|ts| ts.iter().any(|t| t.topic == topic && t.subscribers >= n))
                .unwrap_or(false)
        });
        assert!(ready, "`{topic}` did not get {n} subscribers within 20 s");
    }
}

// ---- Helpers for the daemon tests (tests/tests/daemon_*.rs) ----

impl TestBus {
    /// Starts `shmbusd` with extra arguments and its stderr captured, waits
    /// until its socket answers, and returns its log lines as a channel (each
    /// line is also echoed to the test's stderr, for failures).
    pub fn start_daemon_logged(&mut self, args: &[&str]) -> std::sync::mpsc::Receiver<String> {
        assert!(self.daemon.is_none(), "daemon already started");
        let mut child = self
            .daemon_command()
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmbusd");
        let stderr = child.stderr.take().expect("stderr");
        self.daemon = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(l) = line else { break };
                eprintln!("shmbusd: {l}");
                // The test may have stopped listening; keep draining so the
                // daemon never blocks on a full pipe.
                let _ = tx.send(l);
            }
        });
        self.wait_ready();
        rx
    }

    /// The running daemon's pid.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }
}

/// Waits (bounded by `limit`) for a line of `lines` containing `needle`;
/// returns it, or `None` when none came in time.
pub fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    limit: Duration,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// A `shmbus-test-client` process (see its module doc for the modes) with
/// its stdout as a channel of lines; killed and reaped when dropped.
pub struct TestClient {
    /// The process.
    pub child: Child,
    /// Its stdout, line by line.
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl TestClient {
    /// Starts `shmbus-test-client ARGS...`.
    pub fn spawn(args: &[&str]) -> TestClient {
        let mut child = Command::new(bin("shmbus-test-client"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shmbus-test-client");
        let lines = line_channel(child.stdout.take().expect("stdout"));
        TestClient { child, lines }
    }

    /// Starts it and waits (bounded) for its `ready` line: it is attached.
    pub fn ready(args: &[&str]) -> TestClient {
        let c = TestClient::spawn(args);
        assert_eq!(c.line(), "ready");
        c
    }

    /// The next line it prints, waiting (bounded) for it.
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(120))
            .expect("client printed nothing (hung or died)")
    }

    /// Its last line, after which it must exit successfully.
    pub fn finish(mut self) -> String {
        let last = self.line();
        let status = wait_exit(&mut self.child, Duration::from_secs(60));
        assert!(status.success(), "client exited with {status}");
        last
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// splitmix64: a fast, well-mixed function of its input. The test clients
/// derive every payload byte from it, so a reader can recompute and compare.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Prints `line` on stdout and flushes it (a test client's protocol line:
/// the test reads it through a pipe, so it must not sit in a buffer).
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---- A second real user (tests/tests/segment_identity.rs) ----

/// A user added with `useradd` for one test (with its own group of the same
/// name), removed with `userdel` when dropped. Needs root.
pub struct OtherUser {
    /// Login name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group's gid.
    pub gid: u32,
}

impl OtherUser {
    /// Adds a fresh user. Panics, saying why, if that is impossible (the
    /// tests calling this are `#[ignore]`d unless built as root).
    pub fn create(tag: &str) -> OtherUser {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag: String = tag
            .chars()
            .filter(char::is_ascii_lowercase)
            .take(6)
            .collect();
        let name = format!(
            "sbt{}{}{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = locked_account_tool(
            Command::new("useradd")
                .args(["--no-create-home", "--shell", "/usr/sbin/nologin"])
                .args(["--user-group", &name]),
        );
        assert!(
            out.status.success(),
            "useradd {name} failed (these tests need root and useradd): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("id prints a number")
        };
        OtherUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }

    /// `program` run as this user (its uid, primary group and supplementary
    /// groups from the group database), with no inherited environment
    /// beyond `PATH`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        cmd
    }

    /// A shell command line run as this user; its output.
    pub fn sh(&self, script: &str) -> std::process::Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .expect("run sh as the other user")
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        // Whatever the test left running as this user goes first.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        let _ = locked_account_tool(Command::new("userdel").arg(&self.name));
    }
}

/// Runs `useradd`/`userdel` one at a time (they lock /etc/passwd and fail,
/// rather than wait, when another holds it), retrying a busy database.
fn locked_account_tool(cmd: &mut Command) -> std::process::Output {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = cmd.output().expect("run the account tool");
    for _ in 0..50 {
        // Exit status 1 (useradd) / 10 (userdel): cannot lock the files;
        // another test process holds them.
        if out.status.success() || !matches!(out.status.code(), Some(1) | Some(10)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = cmd.output().expect("run the account tool");
    }
    out
}

// ---- Running the CLI, shared by the CLI tests ----

/// Bound on one CLI command that should finish quickly; reached only by a
/// hang.
pub const CLI_LIMIT: Duration = Duration::from_secs(120);

impl TestBus {
    /// Runs `shmbus ARGS` on this bus to completion with an empty stdin.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_input(args, b"")
    }

    /// Runs `shmbus ARGS` on this bus to completion with `input` on stdin.
    pub fn run_input(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        run_with_input(self.cli().args(args), input, CLI_LIMIT)
    }

    /// [`TestBus::run`], asserting that it succeeded.
    pub fn ok(&self, args: &[&str]) -> std::process::Output {
        self.ok_input(args, b"")
    }

    /// [`TestBus::run_input`], asserting that it succeeded.
    pub fn ok_input(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        let out = self.run_input(args, input);
        assert!(out.status.success(), "shmbus {args:?}: {out:?}");
        out
    }
}

/// A command's stdout, which must be UTF-8.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// A command's stderr (invalid UTF-8 replaced).
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Removes bus `.0`'s segments from /dev/shm however the test ends (for
/// tests that make topics without a daemon).
pub struct RemoveSegments(pub String);

impl Drop for RemoveSegments {
    fn drop(&mut self) {
        let _ = shmbus::daemon::remove_bus_segments(&self.0);
    }
}
