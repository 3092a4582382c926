//! End-to-end tests of access control: clients run as `nobody` (through
//! `setpriv`) against a daemon running as root. The daemon enforces the
//! config's rules on what `SO_PEERCRED` says, and the segment files' group
//! and modes make the kernel enforce the same rules for anyone who tries the
//! segments directly. Needs root to switch users; skipped otherwise.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus::names::{segment_name, Part};
use shmbus_tests::{bin, line_channel, signal, stderr, wait_exit, wait_for_line, TestBus};

const NOBODY: u32 = 65534;
const WAIT: Duration = Duration::from_secs(30);

/// `program` run as uid/gid 65534 with no supplementary groups.
fn as_nobody(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .stdin(Stdio::null());
    cmd
}

/// The `shmbus` CLI on `bus`, run as nobody.
fn cli_as_nobody(bus: &TestBus) -> Command {
    let mut cmd = as_nobody(&bin("shmbus"));
    cmd.arg("--bus")
        .arg(&bus.name)
        .arg("--runtime-dir")
        .arg(&bus.runtime_dir);
    cmd
}

/// Lets other users through the test's private temporary directory (but
/// not list or write it), so they can reach the runtime directory inside.
fn open_test_dir(bus: &TestBus) {
    std::fs::set_permissions(bus.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
}

fn shm_path(bus: &TestBus, topic: &str, part: Part) -> PathBuf {
    Path::new("/dev/shm").join(segment_name(&bus.name, topic, part))
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: switches to nobody with setpriv")]
fn owner_only_by_default_other_users_cannot_reach_the_socket() {
    let mut bus = TestBus::new("acldefault");
    open_test_dir(&bus);
    bus.start_daemon();
    let meta = std::fs::metadata(&bus.runtime_dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    let sock = shmbus::names::socket_path(&bus.runtime_dir, &bus.name);
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    let out = bus.cli().args(["pub", "t", "x"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    for part in [Part::Data, Part::Subs] {
        let meta = std::fs::metadata(shm_path(&bus, "t", part)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600, "{part:?}");
    }

    let out = cli_as_nobody(&bus).arg("topics").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // Nor can nobody map the segments directly.
    let out = as_nobody(&bin("shmbus-test-client"))
        .args(["idle-sub", &bus.name, "t"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).to_lowercase().contains("permission denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: switches to nobody with setpriv")]
fn group_rules_are_enforced_by_the_daemon_and_by_segment_modes() {
    let mut bus = TestBus::new("aclgroup");
    open_test_dir(&bus);
    let config = bus.dir().join("shmbusd.toml");
    let subscribe_only = r#"
        [socket]
        group = 65534

        [[access]]
        topics = "sensors/*"
        groups = [65534]
        allow = ["subscribe"]
    "#;
    std::fs::write(&config, subscribe_only).unwrap();
    let log = bus.start_daemon_logged(&["--config", config.to_str().unwrap()]);
    let sock = shmbus::names::socket_path(&bus.runtime_dir, &bus.name);
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, NOBODY));
    let meta = std::fs::metadata(&bus.runtime_dir).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o710, NOBODY));

    // Topics exist (created by root): one the group may read, one it may not.
    for t in ["sensors/temp", "secret"] {
        let out = bus
            .cli()
            .args(["create", t, "--capacity", "16"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let data = std::fs::metadata(shm_path(&bus, "sensors/temp", Part::Data)).unwrap();
    let subs = std::fs::metadata(shm_path(&bus, "sensors/temp", Part::Subs)).unwrap();
    assert_eq!((data.mode() & 0o777, data.gid()), (0o640, NOBODY));
    assert_eq!((subs.mode() & 0o777, subs.gid()), (0o660, NOBODY));
    let secret = std::fs::metadata(shm_path(&bus, "secret", Part::Data)).unwrap();
    assert_eq!(secret.mode() & 0o777, 0o600);

    // The daemon refuses what the rules do not grant, naming uid and topic.
    let out = cli_as_nobody(&bus)
        .args(["pub", "sensors/temp", "forged"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("permission denied: uid 65534 may not publish to `sensors/temp`"),
        "{}",
        stderr(&out)
    );
    let out = cli_as_nobody(&bus)
        .args(["sub", "secret", "-W", "5s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("permission denied: uid 65534 may not subscribe to `secret`"),
        "{}",
        stderr(&out)
    );
    let out = cli_as_nobody(&bus)
        .args(["create", "sensors/new"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("uid 65534 may not create `sensors/new`"),
        "{}",
        stderr(&out)
    );
    assert!(wait_for_line(&log, "denied: uid 65534", WAIT).is_some());
    // Lists show only what the peer may use.
    let out = cli_as_nobody(&bus)
        .args(["topics", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("sensors/temp") && !listed.contains("secret"),
        "{listed}"
    );

    // Going around the daemon does not help: the kernel refuses to open
    // the data segment for writing, and the other topic at all.
    let out = as_nobody(&bin("shmbus-test-client"))
        .args(["pub", &bus.name, "sensors/temp", "0", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).to_lowercase().contains("permission denied"),
        "{}",
        stderr(&out)
    );
    let out = as_nobody(&bin("shmbus-test-client"))
        .args(["idle-sub", &bus.name, "secret"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // What is granted works: nobody subscribes, root publishes.
    let mut sub = cli_as_nobody(&bus)
        .args(["sub", "sensors/temp", "-c", "1", "-W", "30s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = line_channel(sub.stdout.take().unwrap());
    bus.wait_subscribers("sensors/temp", 1);
    let out = bus
        .cli()
        .args(["pub", "sensors/temp", "21.5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines.recv_timeout(WAIT).unwrap(), "21.5");
    assert!(wait_exit(&mut sub, WAIT).success());

    // SIGHUP with a rule that also grants publish: new requests get it, and
    // the data segment becomes group-writable for the kernel too.
    let publish_too = subscribe_only.replace(r#"["subscribe"]"#, r#"["subscribe", "publish"]"#);
    std::fs::write(&config, publish_too).unwrap();
    signal(bus.daemon().unwrap(), Signal::SIGHUP);
    assert!(wait_for_line(&log, "SIGHUP: reloaded", WAIT).is_some());
    let data = std::fs::metadata(shm_path(&bus, "sensors/temp", Part::Data)).unwrap();
    assert_eq!(data.mode() & 0o777, 0o660);
    let out = cli_as_nobody(&bus)
        .args(["pub", "sensors/temp", "now allowed"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = bus
        .cli()
        .args(["sub", "sensors/temp", "--from-start", "-c", "2"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "21.5\nnow allowed\n");
}
