//! End-to-end tests of `shmbusd`'s life: start refused (second daemon, bad
//! config), graceful SIGTERM, `--clean`, SIGHUP reload, SIGUSR1 stats, and an
//! idle daemon that uses no CPU.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus_tests::{bin, line_channel, signal, wait_exit, wait_for_line, wait_until, TestBus};

/// A `shmbus-test-client` process, killed when dropped.
struct Client {
    child: Child,
    _lines: Receiver<String>,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(args: &[&str]) -> Client {
    let mut child = Command::new(bin("shmbus-test-client"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shmbus-test-client");
    let lines = line_channel(child.stdout.take().expect("stdout"));
    let ready = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("client did not attach");
    assert_eq!(ready, "ready");
    Client {
        child,
        _lines: lines,
    }
}

fn create(bus: &TestBus, args: &[&str]) {
    let out = bus.cli().arg("create").args(args).output().unwrap();
    assert!(out.status.success(), "create {args:?}: {out:?}");
}

fn socket(bus: &TestBus) -> PathBuf {
    shmbus::names::socket_path(&bus.runtime_dir, &bus.name)
}

fn lock_file(bus: &TestBus) -> PathBuf {
    shmbus::names::lock_path(&bus.runtime_dir, &bus.name)
}

fn topic_names(bus: &TestBus) -> Vec<String> {
    bus.client()
        .topics()
        .expect("list topics")
        .into_iter()
        .map(|t| t.topic)
        .collect()
}

/// Writes `text` to `path` at once (rename), so a reload never reads half.
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sigterm_wakes_blocked_clients_with_closed_and_removes_everything() {
    let mut bus = TestBus::new("term");
    bus.start_daemon();
    create(&bus, &["t/sub"]);
    create(&bus, &["t/full", "--capacity", "16"]);

    // A subscriber blocked waiting for a message.
    let mut sub = bus
        .cli()
        .args(["sub", "t/sub"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn shmbus sub");
    bus.wait_subscribers("t/sub", 1);

    // A publisher blocked on a full `block` ring whose reader never reads.
    let _reader = client(&["idle-sub", &bus.name, "t/full"]);
    let mut publisher = client(&["pub-until-closed", &bus.name, "t/full", "0"]);
    let api = bus.client();
    let blocked = wait_until(Duration::from_secs(30), || {
        api.stats(Some("t/full"))
            .is_ok_and(|s| s[0].published == 16 && s[0].publisher_stats.iter().any(|p| p.waiting))
    });
    assert!(blocked, "the publisher did not block on the full ring");
    assert_eq!(bus.shm_files().len(), 4, "{:?}", bus.shm_files());

    let mut daemon = bus.take_daemon().expect("daemon");
    signal(&daemon, Signal::SIGTERM);
    let status = wait_exit(&mut daemon, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status}");

    // Both waiters got `Closed`: the CLI subscriber ends with 0, the
    // test publisher returns from its loop (exit 0).
    let status = wait_exit(&mut sub, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "shmbus sub: {status}");
    let status = wait_exit(&mut publisher.child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "blocked publisher: {status}");

    assert_eq!(bus.shm_files(), Vec::<String>::new());
    assert!(!socket(&bus).exists(), "socket left behind");
    assert!(!lock_file(&bus).exists(), "lock file left behind");
    let err = shmbus::Bus::connect_with(&shmbus::BusOptions {
        name: bus.name.clone(),
        runtime_dir: Some(bus.runtime_dir.clone()),
    })
    .unwrap_err();
    assert!(matches!(err, shmbus::Error::NoDaemon { .. }), "{err}");
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let mut bus = TestBus::new("int");
    bus.start_daemon();
    create(&bus, &["x"]);
    let mut daemon = bus.take_daemon().expect("daemon");
    signal(&daemon, Signal::SIGINT);
    let status = wait_exit(&mut daemon, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(bus.shm_files(), Vec::<String>::new());
    assert!(!socket(&bus).exists());
}

#[test]
fn second_daemon_is_refused_naming_the_first_ones_pid() {
    let mut bus = TestBus::new("second");
    bus.start_daemon();
    let pid = bus.daemon_pid().unwrap();
    let out = bus.daemon_command().output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "bus `{}` is already served by pid {pid}",
            bus.name
        )),
        "{err}"
    );
    // Logs to a pipe carry no terminal colour codes.
    assert!(!err.contains('\x1b'), "{err:?}");
    // The first daemon is untouched.
    assert!(bus.daemon().unwrap().try_wait().unwrap().is_none());
    bus.client().topics().expect("first daemon still serves");
}

#[test]
fn clean_refuses_while_a_daemon_lives_and_cleans_after_it_was_killed() {
    let mut bus = TestBus::new("clean");
    bus.start_daemon();
    let pid = bus.daemon_pid().unwrap();
    create(&bus, &["a"]);
    create(&bus, &["b/c"]);
    assert_eq!(bus.shm_files().len(), 4);

    let out = bus.daemon_command().arg("--clean").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert_eq!(
        bus.shm_files().len(),
        4,
        "--clean removed a live bus's files"
    );
    bus.client().topics().expect("daemon still serves");

    // SIGKILL leaves everything behind; --clean removes it.
    bus.kill_daemon();
    assert_eq!(bus.shm_files().len(), 4);
    assert!(socket(&bus).exists() && lock_file(&bus).exists());
    let out = bus.daemon_command().arg("--clean").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(bus.shm_files(), Vec::<String>::new());
    assert!(!socket(&bus).exists(), "socket left behind");
    assert!(!lock_file(&bus).exists(), "lock file left behind");

    // The bus starts afresh.
    bus.start_daemon();
    assert_eq!(topic_names(&bus), Vec::<String>::new());
}

#[test]
fn bad_config_is_refused_naming_file_key_and_reason() {
    let bus = TestBus::new("badcfg");
    let path = bus.dir().join("shmbusd.toml");
    let cases = [
        (
            "[daemon]\nauto_create = true\nreap_intervall_ms = 100\n",
            "key `daemon.reap_intervall_ms`",
            "unknown field",
        ),
        (
            "[defaults]\npolicy = \"sometimes\"\n",
            "key `defaults.policy`",
            "sometimes",
        ),
        (
            "[[topic]]\nname = \"ok\"\ncapacity = \"many\"\n",
            "key `topic.capacity`",
            "invalid type",
        ),
        ("[defaults]\ncapacity = 1000\n", "capacity", "power of two"),
        (
            "[daemon]\nreap_interval_ms = 0\n",
            "reap_interval_ms",
            "10..=10000",
        ),
    ];
    for (text, key, reason) in cases {
        write_config(&path, text);
        let out = bus
            .daemon_command()
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{text}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(key), "{text}: {err}");
        assert!(err.contains(reason), "{text}: {err}");
        assert!(!err.contains('\x1b'), "{err:?}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    }
    assert_eq!(bus.shm_files(), Vec::<String>::new());
    assert!(!socket(&bus).exists());

    // A missing file is refused too, naming it.
    let missing = bus.dir().join("nope.toml");
    let out = bus
        .daemon_command()
        .arg("--config")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

#[test]
fn sighup_adds_topics_and_keeps_the_old_config_when_the_new_one_is_bad() {
    let mut bus = TestBus::new("hup");
    let path = bus.dir().join("shmbusd.toml");
    write_config(&path, "[[topic]]\nname = \"first\"\ncapacity = 8\n");
    let log = bus.start_daemon_logged(&["--config", path.to_str().unwrap()]);
    assert_eq!(topic_names(&bus), ["first"]);

    write_config(
        &path,
        "[daemon]\nauto_create = false\n[[topic]]\nname = \"first\"\ncapacity = 8\n[[topic]]\nname = \"second\"\npolicy = \"drop-oldest\"\n",
    );
    signal(bus.daemon().unwrap(), Signal::SIGHUP);
    assert!(
        wait_for_line(&log, "SIGHUP: reloaded", Duration::from_secs(30)).is_some(),
        "no reload"
    );
    assert_eq!(topic_names(&bus), ["first", "second"]);
    let second = &bus.client().topics().unwrap()[1];
    assert_eq!(second.config.policy, shmbus::Policy::DropOldest);
    // auto_create = false applies now.
    let out = bus.cli().args(["pub", "third", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    write_config(&path, "[daemon]\nauto_create = yes please\n");
    signal(bus.daemon().unwrap(), Signal::SIGHUP);
    let line = wait_for_line(&log, "keeping the old config", Duration::from_secs(30))
        .expect("bad config not reported");
    assert!(line.contains("auto_create"), "{line}");
    assert!(
        bus.daemon().unwrap().try_wait().unwrap().is_none(),
        "daemon died"
    );
    assert_eq!(topic_names(&bus), ["first", "second"]);
    let out = bus.cli().args(["pub", "third", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "old config not kept: {out:?}");

    // SIGUSR1 logs a snapshot of every topic.
    let out = bus.cli().args(["pub", "first", "a", "b"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    signal(bus.daemon().unwrap(), Signal::SIGUSR1);
    let line =
        wait_for_line(&log, "stats `first`", Duration::from_secs(30)).expect("no stats snapshot");
    assert!(line.contains("published 2"), "{line}");
    assert!(wait_for_line(&log, "stats `second`", Duration::from_secs(30)).is_some());
}

#[test]
fn check_config_accepts_a_good_file_without_starting() {
    let bus = TestBus::new("check");
    let path = bus.dir().join("shmbusd.toml");
    write_config(
        &path,
        "[defaults]\ncapacity = 64\n[[topic]]\nname = \"a/b\"\n",
    );
    let out = bus
        .daemon_command()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(bus.shm_files(), Vec::<String>::new());
    assert!(!socket(&bus).exists());
}

/// utime + stime of `pid`, in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces: count from after its `)`.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of the file are 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn idle_daemon_uses_no_cpu() {
    let mut bus = TestBus::new("idle");
    bus.start_daemon();
    // Topics and an attached subscriber give every reap tick real work.
    create(&bus, &["idle/a"]);
    create(&bus, &["idle/b", "--policy", "drop-oldest"]);
    let _sub = client(&["idle-sub", &bus.name, "idle/a"]);
    let pid = bus.daemon_pid().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    // About eight reap ticks.
    std::thread::sleep(Duration::from_secs(2));
    let after = cpu_ticks(pid);
    // A busy loop would cost ~200 ticks here; allow the odd tick that a
    // timer interrupt charges to a waking daemon.
    assert!(
        after - before <= 2,
        "idle shmbusd used {} clock ticks of CPU",
        after - before
    );
}
