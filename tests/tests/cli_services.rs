//! End-to-end tests of `shmbus call`, `shmbus serve` and `shmbus services`
//! with the real daemon: echo and inetd-style round trips (text, binary,
//! empty), failures answered as errors, no server, a `serve` SIGKILLed with
//! a call in flight, timeouts and Ctrl-C on `call`, the services listing,
//! and what the daemon does with services (segments kept across a restart,
//! removed at SIGTERM and by `--clean`; counters logged on SIGUSR1).

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus::service::service_stats;
use shmbus_tests::{signal, stderr, wait_exit, wait_for_line, wait_until, TestBus};

/// Bound for one CLI command that should finish quickly.
const LIMIT: Duration = Duration::from_secs(60);

/// Bound for readiness waits.
const READY: Duration = Duration::from_secs(20);

/// A running `shmbus serve`, its stderr collected on a thread; killed when
/// dropped.
struct Serve {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Serve {
    /// Starts `shmbus serve SERVICE ARGS` and waits until `workers` servers
    /// of it are attached.
    fn start(bus: &TestBus, service: &str, args: &[&str], workers: u32) -> Serve {
        let mut child = bus
            .cli()
            .arg("serve")
            .arg(service)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmbus serve");
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let mut serve = Serve {
            child,
            stderr: Some(stderr),
        };
        let ready = wait_until(READY, || {
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!(
                    "shmbus serve exited early with {status}: {}",
                    serve.stderr()
                );
            }
            service_stats(&bus.name, service).is_ok_and(|s| s.servers >= workers)
        });
        assert!(
            ready,
            "`shmbus serve {service}` did not attach within {READY:?}"
        );
        serve
    }

    /// Waits (bounded) for it to exit; returns its status and stderr.
    fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let status = wait_exit(&mut self.child, LIMIT);
        (status, self.stderr())
    }

    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| h.join().expect("stderr reader"))
            .unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `shmbus call` running in the background, output captured.
fn spawn_call(bus: &TestBus, args: &[&str]) -> Child {
    bus.cli()
        .arg("call")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmbus call")
}

/// Waits (bounded) until the servers of `service` have taken `n` requests
/// off the queue: answered, or dropped because their caller had given up
/// (a call that timed out before a busy machine got to it).
fn wait_taken(bus: &TestBus, service: &str, n: u64) {
    let taken = wait_until(READY, || {
        service_stats(&bus.name, service).is_ok_and(|s| {
            s.server_stats
                .iter()
                .map(|v| v.taken + v.dropped)
                .sum::<u64>()
                >= n
        })
    });
    assert!(
        taken,
        "`{service}` did not take {n} request(s) within {READY:?}"
    );
}

/// Exit status and stderr of a finished child.
fn finish(mut child: Child) -> (std::process::ExitStatus, String, Vec<u8>) {
    let status = wait_exit(&mut child, LIMIT);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let mut out = Vec::new();
    let _ = child.stdout.take().unwrap().read_to_end(&mut out);
    (status, err, out)
}

fn has_service_file(bus: &TestBus) -> bool {
    bus.shm_files().iter().any(|f| f.ends_with(".svc"))
}

#[test]
fn echo_round_trips_text_binary_and_empty() {
    let mut bus = TestBus::new("echo");
    bus.start_daemon();
    let mut serve = Serve::start(&bus, "echo", &["--echo"], 1);

    assert_eq!(
        bus.ok_input(&["call", "echo", "hello world"], b"").stdout,
        b"hello world\n"
    );
    // stdin as one request, byte for byte, every byte value.
    let all: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
    assert_eq!(
        bus.ok_input(&["call", "echo", "--format", "raw"], &all)
            .stdout,
        all
    );
    assert_eq!(
        bus.ok_input(&["call", "echo", "-f", "-", "--format", "hex"], b"\x00\xff")
            .stdout,
        b"00ff\n"
    );
    assert_eq!(
        bus.ok_input(&["call", "echo", "--format", "raw"], b"")
            .stdout,
        b""
    );
    let json = bus
        .ok_input(&["call", "echo", "héllo", "--format", "json"], b"")
        .stdout;
    let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON reply");
    assert_eq!(v["service"], "echo");
    assert_eq!(v["payload"], "héllo");
    assert_eq!(v["length"], 6);
    // Too large a request is refused before it is sent, with both sizes.
    let big = vec![b'x'; 5000];
    let out = bus.run_input(&["call", "echo"], &big);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains(
            "request of 5000 bytes is over the max request size of service `echo` (4096 bytes)"
        ),
        "{}",
        stderr(&out)
    );

    signal(&serve.child, Signal::SIGTERM);
    let (status, err) = serve.wait();
    assert!(status.success(), "serve after SIGTERM: {status}: {err}");
}

#[test]
fn command_answers_inetd_style_and_its_failures_are_error_replies() {
    let mut bus = TestBus::new("inetd");
    bus.start_daemon();
    let _up = Serve::start(
        &bus,
        "upper",
        &["--workers", "2", "--", "tr", "a-z", "A-Z"],
        2,
    );
    assert_eq!(
        bus.ok_input(&["call", "upper", "hello"], b"").stdout,
        b"HELLO\n"
    );
    // A reply made by a command ends in a newline: text drops it, raw keeps it.
    assert_eq!(
        bus.ok_input(&["call", "upper"], b"line one\n").stdout,
        b"LINE ONE\n"
    );
    assert_eq!(
        bus.ok_input(&["call", "upper", "--format", "raw"], b"line one\n")
            .stdout,
        b"LINE ONE\n"
    );

    let mut failing = Serve::start(
        &bus,
        "fails",
        &["--", "sh", "-c", "echo 'cannot parse input' >&2; exit 3"],
        1,
    );
    let out = bus.run_input(&["call", "fails", "x"], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "shmbus: service `fails` answered with an error: `sh` exited with status 3: cannot parse input\n"
    );

    let _big = Serve::start(
        &bus,
        "big",
        &[
            "--max-reply-size",
            "100",
            "--",
            "head",
            "-c",
            "101",
            "/dev/zero",
        ],
        1,
    );
    // One byte over the limit.
    let out = bus.run_input(&["call", "big", "x"], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("over the service's max reply size of 100 bytes"),
        "{}",
        stderr(&out)
    );

    // The operator sees each failure (and the command's stderr) on serve's stderr.
    signal(&failing.child, Signal::SIGINT);
    let (status, err) = failing.wait();
    assert!(status.success(), "serve after SIGINT: {status}: {err}");
    assert!(err.contains("cannot parse input"), "{err}");
    assert!(err.contains("`sh` exited with status 3"), "{err}");
}

#[test]
fn call_without_a_server_fails_with_no_server() {
    let mut bus = TestBus::new("noserver");
    bus.start_daemon();
    // Never created.
    let out = bus.run_input(&["call", "nobody", "hi", "-W", "30s"], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "shmbus: no server for service `nobody`: start one (for example `shmbus serve nobody --echo`)\n"
    );
    // Created, but its only server has left.
    let mut serve = Serve::start(&bus, "gone", &["--echo"], 1);
    signal(&serve.child, Signal::SIGTERM);
    let (status, _) = serve.wait();
    assert!(status.success());
    let out = bus.run_input(&["call", "gone", "hi", "-W", "30s"], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("no server for service `gone`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_killed_with_a_call_in_flight_ends_the_call_with_server_gone() {
    let mut bus = TestBus::new("killed");
    bus.start_daemon();
    let mut serve = Serve::start(&bus, "slow", &["--", "sleep", "30"], 1);
    let call = spawn_call(&bus, &["slow", "work", "-W", "30s"]);
    wait_taken(&bus, "slow", 1);
    serve.child.kill().expect("SIGKILL serve");
    let _ = serve.child.wait();
    // Well before its 30 s: the caller noticed the server's death.
    let mut call = call;
    let status = wait_exit(&mut call, Duration::from_secs(20));
    let (_, err, out) = finish(call);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty());
    assert_eq!(
        err,
        "shmbus: the server of service `slow` died before replying: retry the call if it is safe to repeat\n"
    );
    // The dead server was reaped and counted.
    let s = service_stats(&bus.name, "slow").expect("stats");
    assert_eq!((s.servers, s.server_deaths), (0, 1));
}

/// `shmbus call SERVICE job ARGS` is taken by a `serve` that sleeps on it;
/// an `--echo` server attaches; the sleeper is SIGKILLed. Returns the
/// call's status, stderr and stdout, and the service's stats (read while
/// the echo server runs).
fn call_whose_server_is_killed(
    bus: &TestBus,
    service: &str,
    args: &[&str],
) -> (
    std::process::ExitStatus,
    String,
    Vec<u8>,
    shmbus::service::ServiceStats,
) {
    let mut slow = Serve::start(bus, service, &["--", "sleep", "30"], 1);
    let call = spawn_call(bus, &[&[service, "job"], args].concat());
    wait_taken(bus, service, 1);
    let _echo = Serve::start(bus, service, &["--echo"], 2);
    slow.child.kill().expect("SIGKILL serve");
    let _ = slow.child.wait();
    let (status, err, out) = finish(call);
    let stats = service_stats(&bus.name, service).expect("stats");
    (status, err, out, stats)
}

#[test]
fn an_idempotent_call_is_answered_by_another_server_when_its_server_is_killed() {
    let mut bus = TestBus::new("retry");
    bus.start_daemon();
    // Without `--idempotent` another server being there changes nothing.
    let (status, err, out, s) = call_whose_server_is_killed(&bus, "plain", &["-W", "60s"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("died before replying"), "{err}");
    assert_eq!((s.calls, s.gone, s.retries), (1, 1, 0), "{s:?}");
    // With it, the same request goes to the echo server, within `-W`.
    let (status, err, out, s) =
        call_whose_server_is_killed(&bus, "idem", &["--idempotent", "-W", "60s"]);
    assert!(status.success(), "{status}: {err}");
    assert_eq!(out, b"job\n");
    assert_eq!(err, "");
    assert_eq!(
        (s.calls, s.replies, s.gone, s.retries, s.server_deaths),
        (2, 1, 1, 1, 1),
        "{s:?}"
    );
}

#[test]
fn call_timeout_exits_3_and_ctrl_c_exits_1() {
    let mut bus = TestBus::new("timeout");
    bus.start_daemon();
    let _serve = Serve::start(&bus, "slow", &["--workers", "2", "--", "sleep", "30"], 2);
    let out = bus.run_input(&["call", "slow", "x", "-W", "300ms"], b"");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stderr(&out)
            .starts_with("shmbus: timed out after 300ms waiting for the reply of service `slow`"),
        "{}",
        stderr(&out)
    );

    let call = spawn_call(&bus, &["slow", "y"]);
    wait_taken(&bus, "slow", 2);
    signal(&call, Signal::SIGINT);
    let (status, err, _) = finish(call);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted while waiting for the reply of service `slow`"),
        "{err}"
    );
}

#[test]
fn services_lists_members_and_counters() {
    let mut bus = TestBus::new("list");
    bus.start_daemon();
    let none = bus.ok_input(&["services"], b"").stdout;
    assert_eq!(
        String::from_utf8(none).unwrap(),
        format!("no services on bus `{}`\n", bus.name)
    );
    let _serve = Serve::start(&bus, "math/add", &["--echo", "--workers", "2"], 2);
    for i in 0..3 {
        bus.ok_input(&["call", "math/add", &i.to_string()], b"");
    }
    let json = bus.ok_input(&["services", "--json"], b"").stdout;
    let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 1, "{v}");
    let s = &list[0];
    assert_eq!(s["service"], "math/add");
    assert_eq!(s["servers"], 2);
    assert_eq!(s["clients"], 0);
    assert_eq!(s["queued"], 0);
    assert_eq!(s["queue_capacity"], 256);
    assert_eq!(s["server_deaths"], 0);
    let replied: u64 = s["server_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["replied"].as_u64().unwrap())
        .sum();
    assert_eq!(replied, 3, "{s}");
    // The service's own counters outlive the one-shot `call` clients.
    assert_eq!(s["calls"], 3, "{s}");
    assert_eq!(s["replies"], 3, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert_eq!(s["timeouts"], 0, "{s}");
    assert_eq!(s["gone"], 0, "{s}");
    assert_eq!(s["in_flight"], 0, "{s}");
    assert_eq!(s["latency_samples"], 3, "{s}");
    let p50 = s["p50_ns"].as_u64().expect("p50 after 3 answers");
    let p90 = s["p90_ns"].as_u64().expect("p90");
    let p99 = s["p99_ns"].as_u64().expect("p99");
    assert!(p50 > 0 && p50 <= p90 && p90 <= p99, "{s}");

    let table = String::from_utf8(bus.ok_input(&["services"], b"").stdout).unwrap();
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("SERVICE"), "{table}");
    for column in ["CALLS", "ERRORS", "TIMEOUTS", "P50", "P99"] {
        assert!(header.contains(column), "{column}: {table}");
    }
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..8],
        ["math/add", "2", "0", "0/256", "0", "3", "0", "0"],
        "{table}"
    );
    // P50 and P99 are durations, not the "-" of a service never answered.
    for latency in &row[8..10] {
        assert!(latency.ends_with('s') && latency != &"-", "{table}");
    }

    // `shmbus stats` shows them after the topics.
    let stats =
        String::from_utf8(bus.ok_input(&["stats", "--interval", "10ms"], b"").stdout).unwrap();
    let services = stats.split("\nSERVICES\n").nth(1).expect(&stats);
    assert!(services.starts_with("SERVICE "), "{stats}");
    assert!(services.contains("\nmath/add "), "{stats}");
    let json = bus
        .ok_input(&["stats", "--json", "--interval", "10ms"], b"")
        .stdout;
    let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(v["services"][0]["service"], "math/add", "{v}");
    assert_eq!(v["services"][0]["servers"], 2, "{v}");
}

#[test]
fn daemon_sigterm_removes_service_segments_and_serve_stops() {
    let mut bus = TestBus::new("sigterm");
    bus.start_daemon();
    let mut serve = Serve::start(&bus, "echo", &["--echo"], 1);
    assert_eq!(bus.ok_input(&["call", "echo", "hi"], b"").stdout, b"hi\n");
    assert!(has_service_file(&bus), "{:?}", bus.shm_files());
    let mut daemon = bus.take_daemon().expect("daemon");
    signal(&daemon, Signal::SIGTERM);
    let status = wait_exit(&mut daemon, LIMIT);
    assert!(status.success(), "shmbusd after SIGTERM: {status}");
    assert!(!has_service_file(&bus), "{:?}", bus.shm_files());
    // `serve` sees its segment gone and stops.
    let (status, err) = serve.wait();
    assert!(status.success(), "serve: {status}: {err}");
    assert!(
        err.contains("service `echo` was removed from /dev/shm"),
        "{err}"
    );
}

#[test]
fn daemon_restart_keeps_services_and_clean_removes_them() {
    let bus_name;
    {
        let mut bus = TestBus::new("restart");
        bus_name = bus.name.clone();
        // A service before any daemon: services do not need one.
        let serve = Serve::start(&bus, "echo", &["--echo"], 1);
        assert_eq!(bus.ok_input(&["call", "echo", "one"], b"").stdout, b"one\n");
        // A starting daemon adopts the bus's leftovers: the service stays.
        bus.start_daemon();
        assert!(has_service_file(&bus), "{:?}", bus.shm_files());
        assert_eq!(bus.ok_input(&["call", "echo", "two"], b"").stdout, b"two\n");
        bus.kill_daemon();
        bus.start_daemon();
        assert_eq!(
            bus.ok_input(&["call", "echo", "three"], b"").stdout,
            b"three\n"
        );
        bus.kill_daemon();
        drop(serve);
        // No daemon and a dead server: --clean removes the service's segment.
        let out = bus
            .daemon_command()
            .arg("--clean")
            .output()
            .expect("shmbusd --clean");
        assert!(out.status.success(), "{out:?}");
        assert!(!has_service_file(&bus), "{:?}", bus.shm_files());
    }
    assert!(shmbus_tests::shm_files_of(&bus_name).is_empty());
}

#[test]
fn sigusr1_logs_service_counters() {
    let mut bus = TestBus::new("usr1");
    let logs = bus.start_daemon_logged(&[]);
    let _serve = Serve::start(&bus, "echo", &["--echo"], 1);
    for _ in 0..2 {
        bus.ok_input(&["call", "echo", "hi"], b"");
    }
    let daemon = bus.daemon().expect("daemon");
    signal(daemon, Signal::SIGUSR1);
    let line = wait_for_line(&logs, "stats service `echo`", LIMIT).expect("no stats line");
    assert!(
        line.contains("servers 1, clients 0, queued 0/256, in flight 0, answered 2"),
        "{line}"
    );
}
