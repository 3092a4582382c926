//! Multi-process tests of services (request/response over shared memory):
//! real server and client processes (`shmbus-service-client`), every reply
//! checked to be its own request's, and SIGKILL at the places that could
//! hang a caller or wedge the queue (a server holding a call, a client with
//! calls in flight).

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus::service::{list_bus_services, service_stats};
use shmbus_tests::{
    bin, line_channel, process_state, signal, unique_bus, wait_exit, wait_until, RemoveSegments,
    TestBus,
};

/// A process with its stdout as a channel of lines; killed when dropped.
struct Proc {
    child: Child,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(bin("shmbus-service-client"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shmbus-service-client");
        let lines = line_channel(child.stdout.take().expect("stdout"));
        Proc { child, lines }
    }

    /// The next line, waiting (bounded) for it.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(120))
            .expect("process printed nothing (hung or died)")
    }

    /// The last line, then a successful exit.
    fn finish(mut self) -> String {
        let last = self.line();
        let status = wait_exit(&mut self.child, Duration::from_secs(60));
        assert!(status.success(), "process exited with {status}");
        last
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn server(bus: &str, name: &str, id: u32, max_clients: u32) -> Proc {
    let p = Proc::spawn(&[
        "serve",
        bus,
        name,
        &id.to_string(),
        &max_clients.to_string(),
    ]);
    assert_eq!(p.line(), "ready");
    p
}

/// One call by a fresh client process; returns its outcome line.
fn call_one(bus: &str, name: &str, timeout_ms: u64) -> String {
    let p = Proc::spawn(&["call-one", bus, name, &timeout_ms.to_string()]);
    let first = p.line();
    if first != "ready" {
        // Attach itself failed (e.g. NoServer): that line is the outcome.
        return first;
    }
    p.finish()
}

/// `clients` client processes each make `calls` calls, `in_flight` at a
/// time, against two server processes: every call is answered exactly once
/// with its own reply (each client checks the reply against its request),
/// and both servers take a share.
fn load(tag: &str, clients: u64, calls: u64, in_flight: u32) {
    let bus = unique_bus(tag);
    let _cleanup = RemoveSegments(bus.clone());
    let servers = [server(&bus, "load", 0, 16), server(&bus, "load", 1, 16)];
    let procs: Vec<Proc> = (0..clients)
        .map(|tag| {
            Proc::spawn(&[
                "call",
                &bus,
                "load",
                &(tag + 1).to_string(),
                &calls.to_string(),
                &in_flight.to_string(),
            ])
        })
        .collect();
    for p in &procs {
        assert_eq!(p.line(), "ready");
    }
    let mut per_server = [0u64; 2];
    for p in procs {
        let s: serde_json::Value = serde_json::from_str(&p.finish()).expect("summary is JSON");
        eprintln!("client summary: {s}");
        assert_eq!(s["calls"], calls, "{s}");
        assert_eq!(s["errors"], serde_json::json!([]), "{s}");
        let mut total = 0;
        for (id, n) in s["per_server"].as_object().expect("per_server") {
            let id: usize = id.parse().expect("server id");
            assert!(id < 2, "reply from an unknown server {id}: {s}");
            per_server[id] += n.as_u64().unwrap();
            total += n.as_u64().unwrap();
        }
        assert_eq!(total, calls);
    }
    // Competing consumers: both servers took a share of the load.
    assert!(per_server[0] > 0 && per_server[1] > 0, "{per_server:?}");
    assert_eq!(per_server[0] + per_server[1], clients * calls);
    let stats = service_stats(&bus, "load").expect("stats");
    assert_eq!(stats.servers, 2);
    assert_eq!(stats.server_deaths, 0);
    assert_eq!(stats.queued, 0);
    drop(servers);
}

#[test]
fn two_servers_three_clients_pipelined_every_reply_is_its_own() {
    load("svcload", 3, 10_000, 16);
}

#[test]
fn two_servers_eight_clients_one_call_at_a_time_every_reply_is_its_own() {
    load("svc8x1000", 8, 1_000, 1);
}

#[test]
fn a_server_killed_while_holding_a_call_gives_server_gone() {
    let bus = unique_bus("svcgone");
    let _cleanup = RemoveSegments(bus.clone());
    let mut holder = Proc::spawn(&["hold", &bus, "h"]);
    assert_eq!(holder.line(), "ready");
    // A generous timeout: the answer must be ServerGone, long before it.
    let caller = Proc::spawn(&["call-one", &bus, "h", "30000"]);
    assert_eq!(caller.line(), "ready");
    assert!(holder.line().starts_with("holding "));
    // Another server attaches; it must not be handed the held call, and
    // must go on serving after the holder dies.
    let _other = server(&bus, "h", 1, 8);
    holder.kill();
    assert_eq!(caller.finish(), "ServerGone");
    assert_eq!(call_one(&bus, "h", 30_000), "ok");
    let stats = service_stats(&bus, "h").expect("stats");
    assert_eq!(stats.server_deaths, 1, "{stats:?}");
    assert_eq!(stats.servers, 1, "{stats:?}");
}

/// A `hold` server takes one call made by a `MODE` client process (`call-one`
/// or `call-idempotent`, 30 s timeout); then, if `other`, a second server
/// attaches; then the holder is SIGKILLed. Returns the caller's outcome
/// line and the service's stats (read while the other server still runs).
fn kill_the_holder(
    bus: &str,
    service: &str,
    mode: &str,
    other: bool,
) -> (String, shmbus::service::ServiceStats) {
    let mut holder = Proc::spawn(&["hold", bus, service]);
    assert_eq!(holder.line(), "ready");
    let caller = Proc::spawn(&[mode, bus, service, "30000"]);
    assert_eq!(caller.line(), "ready");
    assert!(holder.line().starts_with("holding "));
    let other = other.then(|| server(bus, service, 1, 8));
    holder.kill();
    let outcome = caller.finish();
    let stats = service_stats(bus, service).expect("stats");
    drop(other);
    (outcome, stats)
}

#[test]
fn a_server_killed_holding_an_idempotent_call_hands_it_to_another_server() {
    let bus = unique_bus("svcretry");
    let _cleanup = RemoveSegments(bus.clone());
    // A plain call: another server is there, yet the caller must not
    // repeat the call on its own.
    let (outcome, s) = kill_the_holder(&bus, "plain", "call-one", true);
    assert_eq!(outcome, "ServerGone");
    assert_eq!(
        (s.calls, s.gone, s.retries, s.server_deaths),
        (1, 1, 0, 1),
        "{s:?}"
    );
    // The same, marked idempotent: the request (checked whole by the
    // other server, whose reply is checked to be its own) is sent again
    // and answered by server 1, well within the timeout.
    let (outcome, s) = kill_the_holder(&bus, "idem", "call-idempotent", true);
    assert_eq!(outcome, "ok server 1 retries 1");
    assert_eq!(
        (s.calls, s.replies, s.gone, s.retries, s.server_deaths),
        (2, 1, 1, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.server_stats.len(), 1, "{s:?}");
    assert_eq!(s.server_stats[0].replied, 1, "{s:?}");
    // Idempotent, but the holder was the only server: nobody to repeat it
    // to. (The caller reaps the dead holder itself, so it knows at once.)
    let (outcome, s) = kill_the_holder(&bus, "alone", "call-idempotent", false);
    assert_eq!(outcome, "NoServer");
    assert_eq!((s.servers, s.gone, s.retries), (0, 1, 0), "{s:?}");
}

#[test]
fn a_client_without_a_server_gets_no_server() {
    let bus = unique_bus("svcnone");
    let _cleanup = RemoveSegments(bus.clone());
    // Never created.
    assert_eq!(call_one(&bus, "nobody", 30_000), "NoServer");
    // Created by a server that is gone now (killed: its entry is reaped by
    // the caller).
    let mut s = server(&bus, "left", 0, 8);
    assert_eq!(call_one(&bus, "left", 30_000), "ok");
    s.kill();
    assert_eq!(call_one(&bus, "left", 30_000), "NoServer");
    assert_eq!(list_bus_services(&bus).unwrap(), vec!["left".to_string()]);
}

#[test]
fn a_client_killed_with_calls_in_flight_is_replaced_and_servers_go_on() {
    let bus = unique_bus("svcclient");
    let _cleanup = RemoveSegments(bus.clone());
    // One client entry only: the next client must reuse the dead one's.
    let _servers = [server(&bus, "c", 0, 1), server(&bus, "c", 1, 1)];
    let mut flood = Proc::spawn(&["flood", &bus, "c", "100"]);
    assert_eq!(flood.line(), "sent 100 index 0");
    flood.kill();
    let next = Proc::spawn(&["call", &bus, "c", "5", "2000", "8"]);
    assert_eq!(next.line(), "ready");
    let s: serde_json::Value = serde_json::from_str(&next.finish()).expect("summary is JSON");
    assert_eq!(s["index"], 0, "{s}");
    assert_eq!(s["calls"], 2000, "{s}");
    assert_eq!(s["errors"], serde_json::json!([]), "{s}");
    let stats = service_stats(&bus, "c").expect("stats");
    assert_eq!(stats.reaped_clients, 1, "{stats:?}");
    assert_eq!(stats.clients, 0, "{stats:?}");
    assert!(
        wait_until(Duration::from_secs(20), || service_stats(&bus, "c")
            .map(|s| s.queued == 0)
            .unwrap_or(false)),
        "requests left in the queue"
    );
}

#[test]
fn calls_in_flight_complete_across_a_daemon_restart() {
    // Services need no daemon on their data path, but a daemon that starts
    // adopts the bus's segments and reaps them: a SIGKILLed and restarted
    // daemon must leave calls in flight alone. The servers are stopped so
    // that calls are surely in flight (queued) while the daemon dies and a
    // new one adopts the service.
    let mut bus = TestBus::new("svcdaemon");
    let _cleanup = RemoveSegments(bus.name.clone());
    bus.start_daemon();
    let servers = [
        server(&bus.name, "load", 0, 16),
        server(&bus.name, "load", 1, 16),
    ];
    for s in &servers {
        signal(&s.child, Signal::SIGSTOP);
    }
    // The stop is asynchronous: both must be stopped before a request comes.
    let stopped = wait_until(Duration::from_secs(30), || {
        servers.iter().all(|s| process_state(s.child.id()) == 'T')
    });
    assert!(stopped, "servers did not stop");
    let client = Proc::spawn(&["call", &bus.name, "load", "1", "2000", "16"]);
    assert_eq!(client.line(), "ready");
    let waiting = wait_until(Duration::from_secs(30), || {
        service_stats(&bus.name, "load").is_ok_and(|s| s.queued >= 16)
    });
    assert!(waiting, "{:?}", service_stats(&bus.name, "load"));
    for _ in 0..2 {
        bus.kill_daemon();
        bus.start_daemon();
    }
    let stats = service_stats(&bus.name, "load").expect("stats");
    assert_eq!((stats.servers, stats.queued), (2, 16), "{stats:?}");
    for s in &servers {
        signal(&s.child, Signal::SIGCONT);
    }
    let s: serde_json::Value = serde_json::from_str(&client.finish()).expect("summary is JSON");
    assert_eq!(s["calls"], 2000, "{s}");
    assert_eq!(s["errors"], serde_json::json!([]), "{s}");
    let stats = service_stats(&bus.name, "load").expect("stats");
    assert_eq!(stats.server_deaths, 0, "{stats:?}");
    drop(servers);
}
