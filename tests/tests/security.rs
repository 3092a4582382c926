//! Security and resource-exhaustion tests of the daemon and CLI, end to end
//! with the real binaries:
//!
//! - modes are private whatever the umask (socket, runtime directory, lock
//!   file, segments);
//! - a runtime directory that others could write, that another user owns, or
//!   that is a symlink is refused with an error that says how to fix it;
//! - a runtime directory that cannot be created is a one-line error, exit 1;
//! - at its open-file limit the daemon refuses what it cannot do, logs why,
//!   never dies, and serves again once descriptors are free;
//! - topic and bus names can never escape their directory: refused by the
//!   CLI and by the daemon with the rule named, and nothing is created
//!   anywhere else.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use shmbus::control::{encode_frame, Op, Request, Role, MAX_REQUEST_LEN, PROTOCOL_VERSION};
use shmbus::names::{lock_path, segment_name, socket_path, Part};
use shmbus_tests::{bin, line_channel, stderr, wait_exit, wait_for_line, wait_until, TestBus};

const WAIT: Duration = Duration::from_secs(30);
const NOBODY: u32 = 65534;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// A daemon the test spawned itself (with a umask or a resource limit set
/// in the child); killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` as the bus's daemon and waits until its socket answers.
fn spawn_daemon(bus: &mut TestBus, mut cmd: Command) -> Daemon {
    let child = cmd.spawn().expect("spawn shmbusd");
    let mut daemon = Daemon(child);
    let sock = socket_path(&bus.runtime_dir, &bus.name);
    let up = wait_until(WAIT, || {
        UnixStream::connect(&sock).is_ok() || daemon.0.try_wait().unwrap().is_some()
    });
    assert!(up, "shmbusd did not open {}", sock.display());
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "shmbusd exited early"
    );
    daemon
}

/// Runs `shmbusd` to its end (it must fail at start), returning its output.
fn daemon_fails(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmbusd");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = wait_exit(&mut child, WAIT);
    Output {
        status,
        stdout: Vec::new(),
        stderr: err.into_bytes(),
    }
}

/// The daemon's error: exactly one non-empty log line, at ERROR level,
/// exit status 1.
fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stderr(out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one error line, got:\n{text}");
    assert!(lines[0].contains("ERROR"), "{text}");
    lines[0].to_string()
}

// ------------------------------------------------------------ umask

/// Starts a daemon under `umask`, with a runtime directory whose parents do
/// not exist yet, creates topics and a service, and checks every mode.
fn modes_under_umask(umask: u32) {
    let mut bus = TestBus::new("umask");
    // Two missing parents: created 0755 whatever the umask.
    bus.runtime_dir = bus.dir().join("p1").join("p2").join("run");
    let mut cmd = bus.daemon_command();
    // SAFETY: umask is async-signal-safe and touches only the child's own
    // process state between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            Ok(())
        });
    }
    let daemon = spawn_daemon(&mut bus, cmd);

    // One topic made by `create`, one on demand by `pub`.
    let out = bus
        .cli()
        .args(["create", "made", "--capacity", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = bus.cli().args(["pub", "auto/made", "x"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");

    let what = format!("umask {umask:03o}");
    assert_eq!(mode(&bus.runtime_dir), 0o700, "runtime dir, {what}");
    for p in [bus.dir().join("p1"), bus.dir().join("p1").join("p2")] {
        assert_eq!(mode(&p), 0o755, "{}, {what}", p.display());
    }
    let sock = socket_path(&bus.runtime_dir, &bus.name);
    assert_eq!(mode(&sock), 0o600, "socket, {what}");
    assert_eq!(
        mode(&lock_path(&bus.runtime_dir, &bus.name)),
        0o600,
        "lock file, {what}"
    );
    for topic in ["made", "auto/made"] {
        for part in [Part::Data, Part::Subs] {
            let seg = Path::new("/dev/shm").join(segment_name(&bus.name, topic, part));
            assert_eq!(mode(&seg), 0o600, "{}, {what}", seg.display());
            assert_eq!(
                std::fs::metadata(&seg).unwrap().uid(),
                nix::unistd::geteuid().as_raw()
            );
        }
    }

    // A service segment is made by the serving client, under its own umask.
    let mut serve = bus.cli();
    serve
        .args(["serve", "svc", "--echo"])
        .stdout(Stdio::null())
        .stdin(Stdio::null());
    // SAFETY: as above.
    unsafe {
        serve.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            Ok(())
        });
    }
    let mut server = serve.spawn().unwrap();
    let svc = Path::new("/dev/shm").join(shmbus::names::service_segment_name(&bus.name, "svc"));
    assert!(
        wait_until(WAIT, || svc.exists()),
        "no service segment {}",
        svc.display()
    );
    assert_eq!(mode(&svc), 0o600, "service segment, {what}");
    let _ = server.kill();
    let _ = server.wait();
    drop(daemon);
}

#[test]
fn modes_are_private_under_umask_000() {
    modes_under_umask(0o000);
}

#[test]
fn modes_are_private_under_umask_777() {
    // A umask this narrow must not lock anyone (the daemon, a restarted
    // daemon) out of what the daemon creates: every mode is set explicitly.
    modes_under_umask(0o777);
}

// ------------------------------------------------------------ runtime directory

#[test]
fn runtime_dir_writable_by_others_or_group_is_refused() {
    let bus = TestBus::new("rundirmode");
    for (m, who) in [(0o777, "others"), (0o1777, "others"), (0o770, "its group")] {
        std::fs::create_dir_all(&bus.runtime_dir).unwrap();
        std::fs::set_permissions(&bus.runtime_dir, std::fs::Permissions::from_mode(m)).unwrap();
        let out = daemon_fails(&mut bus.daemon_command());
        let line = one_error_line(&out);
        let dir = bus.runtime_dir.display().to_string();
        assert!(
            line.contains(&format!("runtime directory {dir} is writable by {who}")),
            "{line}"
        );
        assert!(line.contains(&format!("(mode {m:04o})")), "{line}");
        assert!(line.contains(&format!("chmod 700 {dir}")), "{line}");
        assert!(line.contains("--runtime-dir"), "{line}");
        // Nothing was put in it.
        let left: Vec<_> = std::fs::read_dir(&bus.runtime_dir).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        // Its mode was not "fixed" behind the user's back either.
        assert_eq!(mode(&bus.runtime_dir), m);
    }
    // Following the advice works.
    std::fs::set_permissions(&bus.runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut bus = bus;
    bus.start_daemon();
}

#[test]
fn runtime_dir_that_is_a_symlink_is_refused() {
    let bus = TestBus::new("rundirowner");
    // A symlink to a good directory: whoever can repoint it could redirect
    // clients to their own socket.
    let real = bus.dir().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&real, &bus.runtime_dir).unwrap();
    let line = one_error_line(&daemon_fails(&mut bus.daemon_command()));
    assert!(line.contains("is a symbolic link"), "{line}");
    assert!(line.contains("--runtime-dir"), "{line}");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: chowns the directory to nobody")]
fn runtime_dir_owned_by_another_user_is_refused() {
    let bus = TestBus::new("rundirother");
    std::fs::create_dir(&bus.runtime_dir).unwrap();
    std::fs::set_permissions(&bus.runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&bus.runtime_dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let line = one_error_line(&daemon_fails(&mut bus.daemon_command()));
    assert!(
        line.contains(&format!(
            "runtime directory {} belongs to uid {NOBODY}",
            bus.runtime_dir.display()
        )),
        "{line}"
    );
    assert!(line.contains("--runtime-dir"), "{line}");
    let left: Vec<_> = std::fs::read_dir(&bus.runtime_dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn runtime_dir_that_cannot_be_created_is_a_one_line_error() {
    let bus = TestBus::new("rundirbad");
    let file = bus.dir().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (file.join("run"), "is not a directory"),
        (file.join("deeper").join("run"), "is not a directory"),
        (file.clone(), "is not a directory"),
        (
            PathBuf::from("/proc/x"),
            "cannot create runtime directory /proc/x",
        ),
        (
            PathBuf::from("/proc/self/x/run"),
            "cannot create runtime directory /proc/self/x/run",
        ),
    ];
    for (dir, want) in cases {
        let mut cmd = Command::new(bin("shmbusd"));
        cmd.arg("--bus")
            .arg(&bus.name)
            .arg("--runtime-dir")
            .arg(&dir)
            .stdin(Stdio::null());
        let line = one_error_line(&daemon_fails(&mut cmd));
        assert!(line.contains(want), "{}: {line}", dir.display());
        assert!(line.contains("--runtime-dir"), "{line}");
    }
    // The file in the way is untouched.
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    assert!(bus.shm_files().is_empty(), "{:?}", bus.shm_files());
}

// ------------------------------------------------------------ fd limit

/// Soft and hard `RLIMIT_NOFILE` of the daemon in the fd-limit test: a few
/// topics and connections fill it.
const FD_LIMIT: u64 = 32;

#[test]
fn at_its_fd_limit_the_daemon_refuses_logs_and_recovers() {
    let mut bus = TestBus::new("fdlimit");
    let mut cmd = bus.daemon_command();
    cmd.stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and changes only the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: FD_LIMIT as libc::rlim_t,
                rlim_max: FD_LIMIT as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut daemon = spawn_daemon_logged(&mut bus, cmd);
    let log = daemon.1.take().unwrap();

    // Topics hold descriptors in the daemon: create until refused.
    let mut created = Vec::new();
    let refused = loop {
        let name = format!("t{}", created.len());
        let out = bus
            .cli()
            .args(["create", &name, "--capacity", "2", "--max-msg-size", "16"])
            .output()
            .unwrap();
        if out.status.success() {
            created.push(name);
            assert!(created.len() < FD_LIMIT as usize, "the limit never bit");
            continue;
        }
        break (name, out);
    };
    let (name, out) = refused;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Too many open files"), "{err}");
    assert!(err.contains(&format!("cannot create `{name}`")), "{err}");
    // Nothing half-created is left of the refused topic.
    assert!(
        wait_until(WAIT, || !bus
            .shm_files()
            .iter()
            .any(|f| f.starts_with(&format!("shmbus.{}.{name}.", bus.name)))),
        "{:?}",
        bus.shm_files()
    );
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon died");
    // Existing topics still carry messages.
    let out = bus
        .cli()
        .args(["pub", &created[0], "still"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // Free descriptors: creating works again.
    for t in created.iter().take(3) {
        let out = bus.cli().args(["rm", t]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let out = bus.cli().args(["create", &name]).output().unwrap();
    assert!(out.status.success(), "{out:?}");

    // A pair attached before the daemon runs out of descriptors.
    let api = bus.client();
    let mut sub = api
        .subscriber(&name, shmbus::SubscribeOptions::default())
        .expect("subscriber");
    let mut publisher = api.publisher(&name).expect("publisher");

    // Now hold more idle connections than descriptors are left: accepting
    // fails, the daemon says why in its log and keeps running.
    let sock = socket_path(&bus.runtime_dir, &bus.name);
    let held: Vec<UnixStream> = (0..FD_LIMIT)
        .map(|_| UnixStream::connect(&sock).expect("connect (queued by the kernel)"))
        .collect();
    let warned = wait_for_line(&log, "cannot accept control connections", WAIT)
        .expect("no log line about the open-file limit");
    assert!(warned.contains("Too many open files"), "{warned}");
    assert!(warned.contains("raise the open-file limit"), "{warned}");
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon died");
    // The data path does not need the daemon: the attached pair goes on.
    publisher.send(b"during").unwrap();
    assert_eq!(sub.recv_timeout(WAIT).unwrap().data, b"during");
    // A client that cannot be served is told why at once (the daemon keeps
    // a spare descriptor for that), in one line.
    let out = bus.cli().arg("topics").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("out of file descriptors"), "{err}");
    drop(held);

    // Once the connections are gone, it serves again.
    let served = wait_until(WAIT, || {
        bus.cli()
            .args(["pub", &name, "back"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        served,
        "the daemon did not serve again after the fds were freed"
    );
    let out = bus.cli().arg("topics").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon died");
}

/// A daemon spawned by the test with its stderr captured as lines (echoed
/// to the test's stderr for failures).
struct LoggedDaemon(Child, Option<std::sync::mpsc::Receiver<String>>);

impl Drop for LoggedDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon_logged(bus: &mut TestBus, mut cmd: Command) -> LoggedDaemon {
    let mut child = cmd.spawn().expect("spawn shmbusd");
    let raw = line_channel(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in raw {
            eprintln!("shmbusd: {l}");
            let _ = tx.send(l);
        }
    });
    let mut daemon = LoggedDaemon(child, Some(rx));
    let sock = socket_path(&bus.runtime_dir, &bus.name);
    let up = wait_until(WAIT, || {
        UnixStream::connect(&sock).is_ok() || daemon.0.try_wait().unwrap().is_some()
    });
    assert!(
        up && daemon.0.try_wait().unwrap().is_none(),
        "shmbusd did not start"
    );
    daemon
}

// ------------------------------------------------------------ names

/// Everything under `dir`, as relative paths.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

fn dev_shm() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// One raw request on the control socket (the library would refuse these
/// names before sending); returns the reply as JSON.
fn raw_request(bus: &TestBus, op: Op) -> serde_json::Value {
    let mut s = UnixStream::connect(socket_path(&bus.runtime_dir, &bus.name)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let req = Request {
        v: PROTOCOL_VERSION,
        id: 7,
        op,
    };
    s.write_all(&encode_frame(&req, MAX_REQUEST_LEN).unwrap())
        .unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a reply");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Topic names that try to escape, and the rule each breaks.
fn bad_topics() -> Vec<(String, &'static str)> {
    vec![
        ("../x".into(), "must not contain `..`"),
        ("a/../../b".into(), "must not contain `..`"),
        ("/etc/passwd".into(), "must not start or end with `/`"),
        ("..".into(), "must not contain `..`"),
        ("a\0b".into(), "may only contain A-Z a-z 0-9 . _ / -"),
        ("a:b".into(), "may only contain A-Z a-z 0-9 . _ / -"),
        ("a b".into(), "may only contain A-Z a-z 0-9 . _ / -"),
        ("x".repeat(129), "must be at most 128 bytes"),
        ("x/".into(), "must not start or end with `/`"),
        ("a//b".into(), "must not contain an empty segment"),
        (String::new(), "must not be empty"),
    ]
}

#[test]
fn names_never_escape_cli_daemon_or_directory() {
    let mut bus = TestBus::new("names");
    let shm_before = dev_shm();
    let passwd_before = std::fs::metadata("/etc/passwd")
        .ok()
        .map(|m| (m.len(), m.mtime()));
    bus.start_daemon();
    let tree_before = tree(bus.dir());

    // The rule each name breaks is checked against the library's own words
    // first, so the test fails loudly if the rules change.
    for (name, rule) in bad_topics() {
        let err = shmbus::names::validate_topic(&name)
            .unwrap_err()
            .to_string();
        assert!(err.contains(rule), "{name:?}: {err}");
    }

    // The CLI refuses each (where a command line can carry it: no NUL) as a
    // usage error naming the rule, for every command that takes a topic.
    for (name, rule) in bad_topics() {
        if name.contains('\0') {
            continue;
        }
        let commands: [&[&str]; 5] = [
            &["pub", &name, "x"],
            &["sub", &name, "-W", "100ms"],
            &["create", &name],
            &["rm", &name],
            &["stats", &name],
        ];
        for args in commands {
            let out = bus.cli().args(args).stdin(Stdio::null()).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
            let err = stderr(&out);
            assert!(err.contains("invalid topic name"), "{args:?}: {err}");
            assert!(err.contains(rule), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }

    // The daemon refuses each over the raw protocol (a client that skips
    // the library's checks), naming the rule.
    for (name, rule) in bad_topics() {
        let ops = [
            Op::Open {
                topic: name.clone(),
                role: Role::Publish,
            },
            Op::Open {
                topic: name.clone(),
                role: Role::Subscribe,
            },
            Op::Create {
                topic: name.clone(),
                config: shmbus::TopicConfig::default(),
            },
            Op::Remove {
                topic: name.clone(),
            },
            Op::Stats {
                topic: Some(name.clone()),
            },
        ];
        for op in ops {
            let shown = format!("{op:?}");
            let reply = raw_request(&bus, op);
            assert_eq!(
                reply["error"]["kind"].as_str(),
                Some("invalid-name"),
                "{shown}: {reply}"
            );
            let msg = reply["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(rule), "{shown}: {reply}");
        }
    }

    // Bad bus names: refused by the CLI (usage error) and by the daemon
    // (exit 1), with the rule; nothing of them is created.
    for (b, rule) in [
        ("../x", "may only contain A-Z a-z 0-9 _ -"),
        ("x/y", "may only contain A-Z a-z 0-9 _ -"),
        ("a.b", "may only contain A-Z a-z 0-9 _ -"),
        ("", "must not be empty"),
        (&"b".repeat(33), "must be at most 32 characters"),
    ] {
        let out = Command::new(bin("shmbus"))
            .args(["--bus", b, "--runtime-dir"])
            .arg(&bus.runtime_dir)
            .args(["pub", "t", "x"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--bus {b:?}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains("invalid bus name") && err.contains(rule),
            "--bus {b:?}: {err}"
        );
        if !b.is_empty() {
            let line = one_error_line(&daemon_fails(
                Command::new(bin("shmbusd"))
                    .args(["--bus", b, "--runtime-dir"])
                    .arg(&bus.runtime_dir)
                    .stdin(Stdio::null()),
            ));
            assert!(line.contains(rule), "shmbusd --bus {b:?}: {line}");
        }
    }

    // Nothing was created anywhere: no segment of this bus (every name was
    // refused), none of the refused buses (bus `a.b` would alias bus `a`'s
    // topic `b.…`), nothing named after /etc/passwd; nothing in the test's
    // directory beyond the daemon's socket and lock; /etc/passwd untouched.
    // (Only new names that these requests could have made are looked at:
    // other tests on the machine create their own files meanwhile.)
    let ours = shmbus::names::bus_segment_prefix(&bus.name);
    let long_bus = format!("shmbus.{}", "b".repeat(33));
    for f in dev_shm().difference(&shm_before) {
        let suspicious = f.starts_with(&ours)
            || f.starts_with("shmbus.a.b.")
            || f.starts_with(&long_bus)
            || f.starts_with("shmbus..")
            || f.contains("passwd");
        assert!(!suspicious, "a refused name created /dev/shm/{f}");
    }
    assert_eq!(
        tree(bus.dir()),
        tree_before,
        "files appeared in the test dir"
    );
    assert_eq!(
        std::fs::metadata("/etc/passwd")
            .ok()
            .map(|m| (m.len(), m.mtime())),
        passwd_before
    );
    // The daemon is unharmed and lists no topic.
    let out = bus.cli().args(["topics", "--json"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
}
