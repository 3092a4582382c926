//! Segment identity on a shared host (docs/reliability.md, *Security
//! model*): with a second real user made by `useradd`, every attack on the
//! names of the bus gets the attacker an error, and nothing it wrote is
//! read nor anything it owns written.
//!
//! * names squatted before the daemon starts, and before a restart;
//! * a forged segment swapped in under a live topic, between the daemon's
//!   answer and the client's mapping (the client is paused there with the
//!   `attach.announced` crash point);
//! * a service's name squatted;
//! * a runtime directory made by another user, or writable by others;
//! * and the legitimate case: an allowed group member, end to end.
//!
//! The daemon runs as root (as in CI); the tests need root to add users and
//! are ignored, with that reason, when built by anyone else.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus::names::{segment_name, Part};
use shmbus::SubscribeOptions;
use shmbus_tests::{
    bin, process_state, signal, stderr, wait_exit, wait_for_line, wait_until, OtherUser, TestBus,
};

const WAIT: Duration = Duration::from_secs(30);

fn shm_path(bus: &TestBus, topic: &str, part: Part) -> PathBuf {
    Path::new("/dev/shm").join(segment_name(&bus.name, topic, part))
}

/// Both files of `topic`, byte for byte.
fn snapshot(bus: &TestBus, topic: &str) -> Vec<Vec<u8>> {
    [Part::Data, Part::Subs]
        .iter()
        .map(|&p| std::fs::read(shm_path(bus, topic, p)).expect("the forged file is still there"))
        .collect()
}

/// `user` creates a valid-looking topic `topic` of `bus`, both files mode
/// `mode`: the attacker's forgery.
fn forge(user: &OtherUser, bus: &TestBus, topic: &str, mode: &str) {
    let out = user
        .command(bin("shmbus-test-client"))
        .args(["forge", &bus.name, topic, mode])
        .output()
        .unwrap();
    assert!(out.status.success(), "forge: {}", stderr(&out));
    for part in [Part::Data, Part::Subs] {
        assert_eq!(
            std::fs::metadata(shm_path(bus, topic, part)).unwrap().uid(),
            user.uid
        );
    }
}

/// Lets other users through the test's private temporary directory.
fn open_test_dir(bus: &TestBus) {
    std::fs::set_permissions(bus.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
}

/// A topic whose names are taken fails with the squatter's uid and the
/// command that frees it; the other topics work.
fn assert_squatted(bus: &TestBus, topic: &str, squatter: u32) {
    let out = bus.cli().args(["pub", topic, "secret"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains(&format!("taken by uid {squatter}")), "{err}");
    assert!(err.contains("rm /dev/shm/"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

fn assert_bus_works(bus: &TestBus, topic: &str) {
    let client = bus.client();
    let mut sub = client
        .subscriber(topic, SubscribeOptions::default())
        .unwrap();
    let mut publisher = client.publisher(topic).unwrap();
    publisher.send(b"fine").unwrap();
    assert_eq!(sub.recv_timeout(WAIT).unwrap().data, b"fine".to_vec());
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: adds a second user with useradd")]
fn squatted_names_before_the_daemon_starts_fail_only_that_topic() {
    let attacker = OtherUser::create("squat");
    let mut bus = TestBus::new("squatfirst");
    forge(&attacker, &bus, "squat/t", "666");
    let before = snapshot(&bus, "squat/t");

    let log = bus.start_daemon_logged(&[]);
    let line = wait_for_line(&log, "not adopting topic `squat/t`", WAIT)
        .expect("the daemon reports the foreign files");
    assert!(
        line.contains(&format!("owned by uid {}", attacker.uid)),
        "{line}"
    );
    assert!(line.contains("rm /dev/shm/"), "{line}");

    assert_squatted(&bus, "squat/t", attacker.uid);
    let out = bus
        .cli()
        .args(["sub", "squat/t", "-c", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains(&format!("uid {}", attacker.uid)));
    assert_bus_works(&bus, "free/t");
    // Nothing was written to the forgery (so nothing leaked into it).
    assert_eq!(snapshot(&bus, "squat/t"), before);

    // A clean shutdown and `--clean` leave the foreign files alone, and say so.
    let mut daemon = bus.take_daemon().unwrap();
    signal(&daemon, Signal::SIGTERM);
    assert!(wait_exit(&mut daemon, WAIT).success());
    assert_eq!(snapshot(&bus, "squat/t"), before);
    let out = bus.daemon_command().arg("--clean").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = stderr(&out);
    for part in [Part::Data, Part::Subs] {
        let path = shm_path(&bus, "squat/t", part);
        assert!(
            err.contains(&format!("did not touch {}", path.display())),
            "{err}"
        );
    }
    assert!(
        err.contains(&format!("owned by uid {}", attacker.uid)),
        "{err}"
    );
    assert_eq!(snapshot(&bus, "squat/t"), before);
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: adds a second user with useradd")]
fn squatted_names_before_a_restart_are_not_adopted() {
    let attacker = OtherUser::create("restart");
    let mut bus = TestBus::new("squatrestart");
    bus.start_daemon();
    let out = bus
        .cli()
        .args(["pub", "kept/t", "a", "b", "c"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    bus.kill_daemon();

    forge(&attacker, &bus, "late/t", "666");
    let before = snapshot(&bus, "late/t");
    let log = bus.start_daemon_logged(&[]);
    let mut adopted = false;
    let mut refused = false;
    assert!(wait_until(WAIT, || {
        while let Ok(l) = log.try_recv() {
            adopted |= l.contains("adopted topic `kept/t`");
            refused |= l.contains("not adopting topic `late/t`")
                && l.contains(&format!("owned by uid {}", attacker.uid));
        }
        adopted && refused
    }));
    assert_squatted(&bus, "late/t", attacker.uid);
    // The adopted topic goes on where it was.
    let stats = bus.client().stats(Some("kept/t")).unwrap();
    assert_eq!(stats[0].published, 3);
    assert_bus_works(&bus, "kept/t");
    assert_eq!(snapshot(&bus, "late/t"), before);
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: adds a second user with useradd")]
fn a_segment_swapped_in_under_a_live_topic_is_refused_at_open() {
    let attacker = OtherUser::create("swap");
    let mut bus = TestBus::new("swap");
    bus.start_daemon();
    bus.client()
        .create_topic("swap/t", &shmbus::TopicConfig::default())
        .unwrap();

    // Two publishers get the daemon's answer (the topic's nonce and modes)
    // and pause before they map anything.
    let paused = || {
        let child = bus
            .cli()
            .env("SHMBUS_CRASH_AT", "attach.announced:1:stop")
            .args(["pub", "swap/t", "secret"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(wait_until(WAIT, || process_state(child.id()) == 'T'));
        child
    };
    let to_foreign = paused();
    let to_same_uid = paused();
    // The daemon is paused too, so it cannot notice the swap first.
    let daemon = nix::unistd::Pid::from_raw(bus.daemon_pid().unwrap() as i32);
    nix::sys::signal::kill(daemon, Signal::SIGSTOP).unwrap();
    let resume = |child: std::process::Child| -> String {
        signal(&child, Signal::SIGCONT);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        stderr(&out)
    };
    let remove_files = || {
        for part in [Part::Data, Part::Subs] {
            std::fs::remove_file(shm_path(&bus, "swap/t", part)).unwrap();
        }
    };

    // The files vanish (an administrator, systemd-logind's RemoveIPC) and
    // the attacker is quick to take the names.
    remove_files();
    forge(&attacker, &bus, "swap/t", "666");
    let forged = snapshot(&bus, "swap/t");
    let err = resume(to_foreign);
    assert!(
        err.contains(&format!("owned by uid {}", attacker.uid)),
        "{err}"
    );
    assert_eq!(snapshot(&bus, "swap/t"), forged);

    // A replacement of the daemon's own uid, with the right modes: only the
    // nonce tells it from the topic the daemon announced.
    remove_files();
    let out = std::process::Command::new(bin("shmbus-test-client"))
        .args(["forge", &bus.name, "swap/t", "600"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = resume(to_same_uid);
    assert!(err.contains("nonce mismatch"), "{err}");

    // The daemon notices the replaced files, closes the topic, and the next
    // open makes it afresh.
    nix::sys::signal::kill(daemon, Signal::SIGCONT).unwrap();
    assert!(wait_until(WAIT, || {
        bus.cli()
            .args(["pub", "swap/t", "again"])
            .output()
            .unwrap()
            .status
            .success()
    }));
    assert_bus_works(&bus, "swap/t");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: adds a second user with useradd")]
fn a_squatted_service_name_is_refused_by_servers_and_clients() {
    let attacker = OtherUser::create("svc");
    let mut bus = TestBus::new("squatsvc");
    bus.start_daemon();
    let file = shmbus::names::service_segment_name(&bus.name, "echo");
    let path = Path::new("/dev/shm").join(&file);
    let out = attacker.sh(&format!(
        "head -c 65536 /dev/zero > {p} && chmod 666 {p}",
        p = path.display()
    ));
    assert!(out.status.success(), "{out:?}");
    let before = std::fs::read(&path).unwrap();
    for args in [
        vec!["serve", "echo", "--echo"],
        vec!["call", "echo", "hello"],
    ] {
        let out = bus.cli().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("owned by uid {}", attacker.uid)),
            "{err}"
        );
        assert!(err.contains(&format!("rm {}", path.display())), "{err}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: adds a second user with useradd")]
fn a_runtime_directory_another_user_made_or_can_write_is_refused() {
    let victim = OtherUser::create("victim");
    let attacker = OtherUser::create("impost");
    let bus = TestBus::new("rundir");
    // The attacker makes the victim's default runtime directory and runs a
    // daemon of its own in it.
    let dir = PathBuf::from(format!("/tmp/shmbus-{}", victim.uid));
    let _ = std::fs::remove_dir_all(&dir);
    let mut impostor = attacker
        .command(bin("shmbusd"))
        .args(["--bus", &bus.name, "--runtime-dir"])
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sock = shmbus::names::socket_path(&dir, &bus.name);
    assert!(wait_until(WAIT, || sock.exists()));
    let out = victim
        .command(bin("shmbus"))
        .args(["--bus", &bus.name, "topics"])
        .output()
        .unwrap();
    signal(&impostor, Signal::SIGKILL);
    wait_exit(&mut impostor, WAIT);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "untrusted runtime directory {}: it belongs to uid {}",
            dir.display(),
            attacker.uid
        )),
        "{err}"
    );
    assert!(err.contains("SHMBUS_RUNTIME_DIR"), "{err}");

    // A named directory that others may write to: they could swap the
    // socket.
    let open = bus.dir().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = std::process::Command::new(bin("shmbus"))
        .args(["--bus", &bus.name, "--runtime-dir"])
        .arg(&open)
        .arg("topics")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("writable by others (mode 0777)"), "{err}");
    assert!(err.contains("chmod go-w"), "{err}");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: adds a second user with useradd")]
fn an_allowed_group_member_works_end_to_end() {
    let member = OtherUser::create("member");
    let mut bus = TestBus::new("member");
    open_test_dir(&bus);
    let config = bus.dir().join("shmbusd.toml");
    std::fs::write(
        &config,
        format!(
            "[socket]\ngroup = {g}\n\n[[access]]\ntopics = \"team/*\"\ngroups = [{g}]\nallow = [\"publish\", \"subscribe\", \"create\"]\n",
            g = member.gid
        ),
    )
    .unwrap();
    bus.start_daemon_logged(&["--config", config.to_str().unwrap()]);
    let cli = || {
        let mut cmd = member.command(bin("shmbus"));
        cmd.arg("--bus")
            .arg(&bus.name)
            .arg("--runtime-dir")
            .arg(&bus.runtime_dir);
        cmd
    };
    let sub = cli()
        .args(["sub", "team/t", "-c", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    bus.wait_subscribers("team/t", 1);
    let out = cli()
        .args(["pub", "team/t", "one", "two"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
    // The files are the daemon's, opened to the group by mode.
    for part in [Part::Data, Part::Subs] {
        let meta = std::fs::metadata(shm_path(&bus, "team/t", part)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (0, member.gid, 0o660)
        );
    }
}
