//! The crash-point driver: kills real processes at **every** named step of
//! the protocol (`shmbus::CRASH_POINTS`, the `crash-points` feature), not at
//! a few chosen ones, with a real daemon and real witnesses, and checks what
//! the survivors see:
//!
//! * no waiter is stuck: the witness publisher finishes and the witness
//!   subscriber drains (a wedge leaves one of them waiting, and the test
//!   fails at its stall bound, which only a hang reaches);
//! * no publisher stays blocked while the ring has room (the witness
//!   publisher on a small `block` ring has to get past the victim's cursor);
//! * every sequence number is accounted for exactly: delivered or skipped
//!   (abandoned), never lost on a `block` topic, and every message of the
//!   witness publisher delivered;
//! * nothing is torn, duplicated or out of order (the witness subscriber
//!   recomputes every byte; strict mode flags any gap in a publisher's
//!   indices);
//! * the topic works afterwards (the witness publisher's messages after the
//!   death arrive).
//!
//! Each test prints its table (point × hit × outcome). The victims are
//! `shmbus-test-client` processes (and, for the reaper's points, the daemon)
//! started with `SHMBUS_CRASH_AT=<point>:<n>`.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus::CrashRole;
use shmbus_tests::{bin, line_channel, process_state, signal, wait_until, TestBus, TestClient};

/// Bound on anything that should take well under a second; reached only
/// by a hang.
const STALL: Duration = Duration::from_secs(60);
/// Messages of the witness publisher.
const WITNESS: u64 = 200;
/// Messages the victim publisher tries to send.
const VICTIM_PUB: u64 = 60;
/// Messages the victim subscriber reads before it detaches.
const VICTIM_SUB: u64 = 40;

/// A victim `shmbus-test-client` with its crash plan.
fn victim(args: &[&str], plan: &str) -> (Child, Receiver<String>) {
    spawn_with_plan("shmbus-test-client", args, Some(plan))
}

/// Starts test binary `name` with `args` and, if given, a crash plan.
fn spawn_with_plan(name: &str, args: &[&str], plan: Option<&str>) -> (Child, Receiver<String>) {
    let mut cmd = Command::new(bin(name));
    if let Some(plan) = plan {
        cmd.env("SHMBUS_CRASH_AT", plan);
    }
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let lines = line_channel(child.stdout.take().expect("stdout"));
    (child, lines)
}

/// Waits for the victim to end: `true` if the crash point killed it.
fn victim_died(child: &mut Child) -> bool {
    let status = shmbus_tests::wait_exit(child, STALL);
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => true,
        None if status.success() => false,
        _ => panic!("victim ended with {status}"),
    }
}

fn cli_ok(bus: &TestBus, args: &[&str]) {
    let out = bus.cli().args(args).output().expect("run shmbus");
    assert!(out.status.success(), "shmbus {args:?}: {out:?}");
}

/// What the witness subscriber saw, checked for exact accounting.
struct Seen {
    delivered: u64,
    skipped: u64,
    victim_msgs: u64,
    rival_msgs: u64,
}

/// Closes the topic (the witness subscriber drains and ends) and checks its
/// summary: no errors, no loss, every sequence accounted for, every
/// witness message delivered.
fn close_and_check(bus: &TestBus, topic: &str, witness_sub: TestClient) -> Result<Seen, String> {
    cli_ok(bus, &["rm", topic]);
    let line = witness_sub.finish();
    let v: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("summary `{line}`: {e}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let errors = v["errors"].as_array().map_or(0, Vec::len);
    if errors != 0 {
        return Err(format!("torn, duplicate or out of order: {}", v["errors"]));
    }
    if n("lost") != 0 {
        return Err(format!("{} lost on a block topic", n("lost")));
    }
    let span = n("next_seq") - n("start");
    if n("delivered") + n("skipped") != span {
        return Err(format!(
            "accounting: delivered {} + skipped {} != {span} sequences",
            n("delivered"),
            n("skipped")
        ));
    }
    let w = &v["per_pub"]["1"];
    if w[0].as_u64() != Some(WITNESS) {
        return Err(format!("witness delivered {w} of {WITNESS}"));
    }
    Ok(Seen {
        delivered: n("delivered"),
        skipped: n("skipped"),
        victim_msgs: v["per_pub"]["0"][0].as_u64().unwrap_or(0),
        rival_msgs: v["per_pub"]["2"][0].as_u64().unwrap_or(0),
    })
}

/// A bus with a daemon and a small `block` topic `t` with a witness
/// subscriber attached.
fn setup(tag: &str) -> (TestBus, TestClient) {
    let mut bus = TestBus::new(tag);
    bus.start_daemon();
    cli_ok(
        &bus,
        &["create", "t", "--capacity", "8", "--policy", "block"],
    );
    let sub = TestClient::ready(&["sub-until-closed", &bus.name, "t", "1"]);
    (bus, sub)
}

/// One row of a table.
struct Row {
    point: String,
    n: u32,
    outcome: String,
    ok: bool,
}

fn print_and_assert(title: &str, rows: &[Row]) {
    println!("\n{title}\n{:<22} {:>3}  outcome", "crash point", "hit");
    for r in rows {
        println!(
            "{:<22} {:>3}  {}{}",
            r.point,
            r.n,
            if r.ok { "" } else { "FAIL: " },
            r.outcome
        );
    }
    let failed: Vec<_> = rows.iter().filter(|r| !r.ok).collect();
    assert!(
        failed.is_empty(),
        "{} of {} runs failed (table above)",
        failed.len(),
        rows.len()
    );
}

/// Runs the witness publisher to its end, waits for the victim (if any)
/// to end, then closes the topic and checks the witness subscriber:
/// whether the victim was killed, and what the subscriber saw.
fn run_witnesses(
    bus: &TestBus,
    wsub: TestClient,
    victim: Option<&mut Child>,
) -> (bool, Result<Seen, String>) {
    let published = TestClient::ready(&["pub", &bus.name, "t", "1", &WITNESS.to_string()]).finish();
    // Before the close: a victim still publishing would get `Closed`.
    let died = victim.is_some_and(victim_died);
    let seen = if published == format!("published {WITNESS}") {
        close_and_check(bus, "t", wsub)
    } else {
        Err(format!("witness publisher: {published}"))
    };
    (died, seen)
}

/// A row for a victim killed (or not) at `point`'s `n`-th hit.
fn row(
    point: &str,
    n: u32,
    died: bool,
    seen: Result<Seen, String>,
    what: impl Fn(&Seen) -> String,
) -> Row {
    let (ok, outcome) = match seen {
        Ok(seen) => (
            true,
            format!(
                "{}; {}",
                if died { "killed" } else { "lived (fewer hits)" },
                what(&seen)
            ),
        ),
        Err(e) => (false, e),
    };
    Row {
        point: point.to_string(),
        n,
        outcome,
        ok,
    }
}

/// A publisher killed at every publisher point (several hits each) beside a
/// live witness publisher.
#[test]
fn a_publisher_killed_at_every_point_wedges_nothing_and_loses_nothing() {
    let mut rows = Vec::new();
    for point in shmbus::crash_points_of(CrashRole::Publisher) {
        for n in [1u32, 2, 7, 30] {
            let (bus, wsub) = setup("crashpub");
            let (mut v, _vl) = victim(
                &["victim-pub", &bus.name, "t", "0", &VICTIM_PUB.to_string()],
                &format!("{point}:{n}"),
            );
            let (died, seen) = run_witnesses(&bus, wsub, Some(&mut v));
            rows.push(row(point, n, died, seen, |seen| {
                format!(
                    "{} delivered ({} of the victim), {} skipped",
                    seen.delivered, seen.victim_msgs, seen.skipped
                )
            }));
        }
    }
    print_and_assert("publisher killed at each point", &rows);
}

/// A subscriber killed at every subscriber point, while a witness publisher
/// on an 8-slot `block` ring depends on its cursor.
#[test]
fn a_subscriber_killed_at_every_point_never_holds_a_publisher() {
    let mut rows = Vec::new();
    for point in shmbus::crash_points_of(CrashRole::Subscriber) {
        for n in [1u32, 2, 17] {
            let (bus, wsub) = setup("crashsub");
            let (mut v, vl) = victim(
                &["victim-sub", &bus.name, "t", &VICTIM_SUB.to_string()],
                &format!("{point}:{n}"),
            );
            // Attached (or dead trying) before the publisher starts.
            let _ = vl.recv_timeout(STALL);
            let (died, seen) = run_witnesses(&bus, wsub, Some(&mut v));
            rows.push(row(point, n, died, seen, |seen| {
                format!("witness publisher done, {} delivered", seen.delivered)
            }));
        }
    }
    print_and_assert("subscriber killed at each point", &rows);
}

/// The daemon killed at every step of its reaper while it reclaims a
/// publisher that died holding a claim; a restarted daemon finishes the
/// job and the topic works.
#[test]
fn the_daemon_killed_at_every_reaper_point_is_repaired_by_the_next() {
    let mut rows = Vec::new();
    for point in shmbus::crash_points_of(CrashRole::Reaper) {
        let mut bus = TestBus::new("crashreap");
        let mut cmd = bus.daemon_command();
        let mut daemon = cmd
            .env("SHMBUS_CRASH_AT", format!("{point}:1"))
            .spawn()
            .expect("spawn shmbusd");
        let sock = shmbus::names::socket_path(&bus.runtime_dir, &bus.name);
        assert!(wait_until(STALL, || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        }));
        cli_ok(
            &bus,
            &["create", "t", "--capacity", "8", "--policy", "block"],
        );
        let wsub = TestClient::ready(&["sub-until-closed", &bus.name, "t", "1"]);
        let holder = TestClient::spawn(&["hold-loan", &bus.name, "t"]);
        assert_eq!(holder.line(), "loaned 0");
        drop(holder); // SIGKILL: the daemon reaps it, and dies at `point`
        let died = victim_died(&mut daemon);
        bus.start_daemon(); // adopts the topic and reaps again
        let (_, r) = run_witnesses(&bus, wsub, None);
        let (ok, outcome) = match r {
            Ok(seen) if died && seen.skipped == 1 => (
                true,
                format!(
                    "daemon killed; restarted daemon reaped; {} delivered, dead claim skipped",
                    seen.delivered
                ),
            ),
            Ok(seen) => (
                false,
                format!("daemon died: {died}, skipped {} (want 1)", seen.skipped),
            ),
            Err(e) => (false, e),
        };
        rows.push(Row {
            point: point.to_string(),
            n: 1,
            outcome,
            ok,
        });
    }
    print_and_assert("daemon killed at each reaper point", &rows);
}

/// What a witness pattern subscriber returns: the sequence numbers it
/// read and the losses it was told of.
type Witnessed = std::thread::JoinHandle<Result<(Vec<u64>, u64), String>>;

/// A witness pattern subscriber on `b/*`, in a thread: it reports on
/// `joined` once it follows `b/t`, then reads `want` messages of it and
/// returns their sequence numbers and the losses it was told of.
fn pattern_witness(bus: &TestBus, want: u64) -> (std::sync::mpsc::Receiver<()>, Witnessed) {
    let client = bus.client();
    let mut sub = client
        .subscribe_pattern("b/*", shmbus::SubscribeOptions::default())
        .expect("pattern subscription");
    let (tx, joined) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + STALL;
        while !sub.topics().any(|t| t == "b/t") {
            if std::time::Instant::now() > deadline {
                return Err("the witness never followed b/t".to_string());
            }
            match sub.recv_timeout(Duration::from_millis(50)) {
                Ok(m) => return Err(format!("message before the join: {}", m.seq)),
                Err(shmbus::Error::Timeout | shmbus::Error::Lagged(_)) => {}
                Err(e) => return Err(format!("witness: {e}")),
            }
        }
        let _ = tx.send(());
        let (mut seqs, mut lost) = (Vec::new(), 0);
        while (seqs.len() as u64) < want {
            match sub.recv_timeout(STALL) {
                Ok(m) => seqs.push(m.seq),
                Err(shmbus::Error::Lagged(n)) => lost += n,
                Err(e) => return Err(format!("witness after {} messages: {e}", seqs.len())),
            }
        }
        Ok((seqs, lost))
    });
    (joined, handle)
}

/// Publishes the witness messages into the new topic `b/t` and checks the
/// witness pattern subscriber got each of them, in order, with no loss.
fn check_born_topic(
    bus: &TestBus,
    joined: std::sync::mpsc::Receiver<()>,
    witness: Witnessed,
) -> Result<String, String> {
    joined
        .recv_timeout(STALL)
        .map_err(|_| "the witness never followed b/t".to_string())?;
    let published =
        TestClient::ready(&["pub", &bus.name, "b/t", "1", &WITNESS.to_string()]).finish();
    if published != format!("published {WITNESS}") {
        return Err(format!("witness publisher: {published}"));
    }
    let (seqs, lost) = witness.join().expect("witness thread")?;
    let want: Vec<u64> = (0..WITNESS).collect();
    if lost != 0 || seqs != want {
        return Err(format!("witness got {} messages, lost {lost}", seqs.len()));
    }
    Ok(format!(
        "{WITNESS} published past an 8-slot ring, all delivered"
    ))
}

/// A row for a `who` killed (or not) at `point` during a topic's birth.
fn birth_row(point: &str, who: &str, died: bool, checked: Result<String, String>) -> Row {
    let (ok, outcome) = match checked {
        Ok(what) if died => (true, format!("{who} killed; {what}")),
        Ok(_) => (false, format!("the {who} did not die at the point")),
        Err(e) => (false, e),
    };
    Row {
        point: point.to_string(),
        n: 1,
        outcome,
        ok,
    }
}

/// The daemon killed at the birth of a topic that a pattern subscription
/// matches, holding the entry it reserved for it and before announcing it:
/// the entry dies with the daemon (its lock was the daemon's descriptor), a
/// restarted daemon reaps it, the subscription reconnects and joins the
/// topic, and a publisher on the topic's 8-slot `block` ring is held back
/// by nothing.
#[test]
fn the_daemon_killed_at_a_topic_birth_holds_nothing_back() {
    let mut rows = Vec::new();
    for point in shmbus::crash_points_of(CrashRole::Daemon) {
        let mut bus = TestBus::new("crashbirth");
        let mut daemon = bus
            .daemon_command()
            .env("SHMBUS_CRASH_AT", format!("{point}:1"))
            .spawn()
            .expect("spawn shmbusd");
        let sock = shmbus::names::socket_path(&bus.runtime_dir, &bus.name);
        assert!(wait_until(STALL, || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        }));
        let (joined, witness) = pattern_witness(&bus, WITNESS);
        // Dies inside this request: the creator sees the daemon go.
        let _ = bus
            .cli()
            .args(["create", "b/t", "--capacity", "8", "--policy", "block"])
            .output();
        let died = victim_died(&mut daemon);
        bus.start_daemon();
        rows.push(birth_row(
            point,
            "daemon",
            died,
            check_born_topic(&bus, joined, witness),
        ));
    }
    print_and_assert("daemon killed at a topic's birth", &rows);
}

/// A pattern subscriber killed while it takes over the entry the daemon
/// held for it at a topic's birth: the entry is reaped like any dead
/// subscriber's, so a publisher on the topic's 8-slot `block` ring goes on,
/// and a second pattern subscriber gets every message.
#[test]
fn a_pattern_subscriber_killed_at_a_topic_birth_holds_nothing_back() {
    let mut rows = Vec::new();
    for point in shmbus::crash_points_of(CrashRole::PatternSubscriber) {
        let mut bus = TestBus::new("crashadopt");
        bus.start_daemon();
        let (joined, witness) = pattern_witness(&bus, WITNESS);
        let rundir = bus.runtime_dir.display().to_string();
        let (mut v, vl) = victim(
            &["pattern-sub", &rundir, &bus.name, "b/*", "1000"],
            &format!("{point}:1"),
        );
        assert_eq!(vl.recv_timeout(STALL).as_deref(), Ok("ready"));
        cli_ok(
            &bus,
            &["create", "b/t", "--capacity", "8", "--policy", "block"],
        );
        let died = victim_died(&mut v);
        rows.push(birth_row(
            point,
            "subscriber",
            died,
            check_born_topic(&bus, joined, witness),
        ));
    }
    print_and_assert("pattern subscriber killed at a topic's birth", &rows);
}

/// Finding 1 with real processes: a rival publisher SIGSTOPped right after
/// storing its intent for sequence t (before its CAS), and a publisher that
/// wins t and is killed. Killed after marking its claim won, the reaper
/// abandons t at once and the topic goes on while the rival is still
/// stopped. Killed between its CAS and the mark (the one ambiguous window),
/// the reaper waits for the rival to move on, and the topic goes on as soon
/// as the rival is continued: a stopped process can delay, never wedge.
#[test]
fn a_rival_paused_at_its_worst_moment_does_not_wedge_the_topic() {
    let mut rows = Vec::new();
    for (point, goes_on_while_stopped) in [("claim.won", true), ("claim.cas", false)] {
        let (bus, wsub) = setup("crashrival");
        let (mut rival, _rl) = victim(
            &["victim-pub", &bus.name, "t", "2", "5"],
            "claim.intent:1:stop",
        );
        let rival_pid = rival.id();
        assert!(
            wait_until(STALL, || process_state(rival_pid) == 'T'),
            "rival did not stop"
        );
        let (mut v, _vl) = victim(
            &["victim-pub", &bus.name, "t", "0", "5"],
            &format!("{point}:1"),
        );
        assert!(victim_died(&mut v), "{point} is on every publish");
        let wpub = TestClient::ready(&["pub", &bus.name, "t", "1", &WITNESS.to_string()]);
        let mut outcome = String::new();
        let mut ok = true;
        if goes_on_while_stopped {
            let published = wpub.finish();
            ok &= published == format!("published {WITNESS}");
            outcome += "witness done while the rival was stopped; ";
            signal(&rival, Signal::SIGCONT);
        } else {
            // The witness may or may not get its first message through
            // before the rival continues; it must finish after.
            std::thread::sleep(Duration::from_millis(500));
            signal(&rival, Signal::SIGCONT);
            let published = wpub.finish();
            ok &= published == format!("published {WITNESS}");
            outcome += "witness done after SIGCONT; ";
        }
        ok &= !victim_died(&mut rival);
        match close_and_check(&bus, "t", wsub) {
            Ok(seen) => {
                ok &= seen.rival_msgs == 5;
                outcome += &format!(
                    "{} delivered, {} skipped, {} of the rival's 5 delivered",
                    seen.delivered, seen.skipped, seen.rival_msgs
                )
            }
            Err(e) => {
                ok = false;
                outcome += &e;
            }
        }
        rows.push(Row {
            point: format!("{point} + rival"),
            n: 1,
            outcome,
            ok,
        });
    }
    print_and_assert("rival stopped at claim.intent, victim killed", &rows);
}

// ------------------------------------------------------------- services
//
// A service `s` (no daemon: the first server creates it), a witness server
// and a witness client making `CALLS` calls one at a time; each call must
// be answered with its own reply, intact, or end with `ServerGone` (a
// server died holding it: at most one per victim death, since calls are
// sequential); the client never hangs, and the witness server answers the
// rest.

/// Calls of the witness client.
const CALLS: u64 = 200;

/// A process of `shmbus-service-client` that printed `ready`.
fn service_proc(args: &[&str], plan: Option<&str>) -> (Child, Receiver<String>) {
    let (child, lines) = spawn_with_plan("shmbus-service-client", args, plan);
    let first = lines.recv_timeout(STALL).expect("service process hung");
    assert_eq!(first, "ready", "{args:?}");
    (child, lines)
}

/// The witness client's summary, checked: every call answered with its own
/// reply or ended by `ServerGone`, at most `max_gone` of those.
fn witness_calls(bus: &TestBus, max_gone: u64) -> Result<String, String> {
    let (mut c, lines) = service_proc(
        &["call-tolerant", &bus.name, "s", "7", &CALLS.to_string()],
        None,
    );
    let line = lines
        .recv_timeout(STALL)
        .map_err(|_| "the witness client hung".to_string())?;
    let status = shmbus_tests::wait_exit(&mut c, STALL);
    let v: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("summary `{line}`: {e}"))?;
    let (replied, gone) = (
        v["replied"].as_u64().unwrap_or(0),
        v["gone"].as_u64().unwrap_or(u64::MAX),
    );
    if !status.success() || v["errors"] != serde_json::json!([]) {
        return Err(format!("witness client {status}: {line}"));
    }
    if replied + gone != CALLS || gone > max_gone {
        return Err(format!(
            "{replied} replied + {gone} gone of {CALLS} (at most {max_gone} gone)"
        ));
    }
    Ok(format!("{replied} replied, {gone} ServerGone"))
}

/// Whether a victim that may still be running was killed at its point
/// (else it lived, and is killed now).
fn died_or_kill(victim: &mut Child) -> bool {
    use std::os::unix::process::ExitStatusExt;
    match victim.try_wait().expect("try_wait") {
        Some(status) => status.signal() == Some(9),
        None => {
            let _ = victim.kill();
            let _ = victim.wait();
            false
        }
    }
}

/// A server killed at every server point, beside a witness server.
#[test]
fn a_server_killed_at_every_point_hangs_no_caller() {
    let mut rows = Vec::new();
    for point in shmbus::crash_points_of(CrashRole::ServiceServer) {
        for n in [1u32, 2, 17] {
            let bus = TestBus::new("crashsrv");
            let (mut witness, _wl) = service_proc(&["serve", &bus.name, "s", "1", "8"], None);
            let plan = format!("{point}:{n}");
            let (mut v, _vl) = service_proc(&["serve", &bus.name, "s", "9", "8"], Some(&plan));
            let seen = witness_calls(&bus, 1);
            let died = died_or_kill(&mut v);
            let _ = witness.kill();
            let _ = witness.wait();
            let (ok, outcome) = match seen {
                Ok(s) => (
                    true,
                    format!(
                        "{}; {s}",
                        if died { "killed" } else { "lived (fewer hits)" }
                    ),
                ),
                Err(e) => (false, e),
            };
            rows.push(Row {
                point: point.to_string(),
                n,
                outcome,
                ok,
            });
        }
    }
    print_and_assert("service server killed at each point", &rows);
}

/// A client killed at every client point, beside a witness client whose
/// calls must all be answered (a dead client never blocks the queue).
#[test]
fn a_client_killed_at_every_point_blocks_no_other_call() {
    let mut rows = Vec::new();
    for point in shmbus::crash_points_of(CrashRole::ServiceClient) {
        for n in [1u32, 2, 17] {
            let bus = TestBus::new("crashcli");
            let (mut server, _sl) = service_proc(&["serve", &bus.name, "s", "1", "8"], None);
            let plan = format!("{point}:{n}");
            let (mut v, _vl) = service_proc(&["call", &bus.name, "s", "3", "40", "4"], Some(&plan));
            let seen = witness_calls(&bus, 0);
            let died = victim_died(&mut v);
            let _ = server.kill();
            let _ = server.wait();
            let (ok, outcome) = match seen {
                Ok(s) => (
                    true,
                    format!(
                        "{}; {s}",
                        if died { "killed" } else { "lived (fewer hits)" }
                    ),
                ),
                Err(e) => (false, e),
            };
            rows.push(Row {
                point: point.to_string(),
                n,
                outcome,
                ok,
            });
        }
    }
    print_and_assert("service client killed at each point", &rows);
}
