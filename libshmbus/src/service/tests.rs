//! In-process tests of services: a server thread and clients on a private
//! bus name, covering the call paths and the error replies. The
//! multi-process and crash tests are in `tests/tests/services.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::service::{Client, Server, ServiceConfig, TypedClient, TypedServer};

const T: Duration = Duration::from_secs(20);

/// A unique bus; its segments are removed when dropped.
struct Bus(String);

impl Bus {
    fn new(tag: &str) -> Bus {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        Bus(format!(
            "svc{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = crate::daemon::remove_bus_segments(&self.0);
    }
}

fn small() -> ServiceConfig {
    ServiceConfig {
        queue_capacity: 8,
        max_request_size: 256,
        max_reply_size: 300,
        max_servers: 2,
        max_clients: 2,
        max_in_flight: 4,
    }
}

/// Runs an echo server (reply = request + "!") on a thread until `stop`.
fn echo_server(
    bus: &str,
    name: &str,
    cfg: &ServiceConfig,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let server = Server::attach_with(bus, name, cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let h = std::thread::spawn(move || {
        let mut n = 0;
        while !flag.load(Ordering::Relaxed) {
            let req = match server.recv_request_timeout(Duration::from_millis(20)) {
                Ok(r) => r,
                Err(Error::Timeout) => continue,
                Err(e) => panic!("{e}"),
            };
            let mut out = req.to_vec();
            out.push(b'!');
            let t = req.ticket();
            drop(req);
            server.reply(t, &out).unwrap();
            n += 1;
        }
        n
    });
    (stop, h)
}

#[test]
fn attaching_without_a_server_is_no_server() {
    let bus = Bus::new("none");
    let e = Client::attach(&bus.0, "nobody").unwrap_err();
    assert!(matches!(e, Error::NoServer { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "no server for service `nobody`: start one (for example `shmbus serve nobody --echo`)"
    );
    // A service whose server left: the segment stays, calls fail at once.
    drop(Server::attach_with(&bus.0, "left", &small()).unwrap());
    let mut c = Client::attach(&bus.0, "left").unwrap();
    let e = c.call_timeout(b"x", T).unwrap_err();
    assert!(matches!(e, Error::NoServer { .. }), "{e}");
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn round_trips_text_binary_empty_and_max_size() {
    let bus = Bus::new("rt");
    let cfg = small();
    let (stop, h) = echo_server(&bus.0, "echo", &cfg);
    let mut c = Client::attach(&bus.0, "echo").unwrap();
    assert_eq!(c.call_timeout(b"hello", T).unwrap(), b"hello!");
    assert_eq!(c.call_timeout(b"", T).unwrap(), b"!");
    let bin: Vec<u8> = (0..=255u8).collect();
    let mut want = bin.clone();
    want.push(b'!');
    assert_eq!(c.call_timeout(&bin, T).unwrap(), want);
    let e = c.call_timeout(&[0u8; 257], T).unwrap_err();
    assert!(e.to_string().contains("max request size of 256"), "{e}");
    let n = c.call_timeout_with(b"abc", T, |r| r.len()).unwrap();
    assert_eq!(n, 4);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(h.join().unwrap(), 4);
}

#[test]
fn pipelined_calls_match_their_replies_and_the_limit_holds() {
    let bus = Bus::new("pipe");
    let cfg = small();
    let (stop, h) = echo_server(&bus.0, "p", &cfg);
    let mut c = Client::attach(&bus.0, "p").unwrap();
    for round in 0..200u32 {
        let tickets: Vec<_> = (0..4u32)
            .map(|k| c.send_request(format!("{round}-{k}").as_bytes()).unwrap())
            .collect();
        if round == 0 {
            let e = c.send_request(b"one too many").unwrap_err();
            assert!(e.to_string().contains("in flight"), "{e}");
        }
        // Redeem out of order.
        for (k, t) in tickets.into_iter().enumerate().rev() {
            let r = c.recv_reply_timeout(t, T).unwrap();
            assert_eq!(r, format!("{round}-{k}!").as_bytes());
            assert!(c.recv_reply_timeout(t, T).is_err(), "a ticket redeems once");
        }
    }
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn timeouts_leave_recv_pending_and_cancel_drops_the_late_reply() {
    let bus = Bus::new("late");
    let cfg = small();
    let server = Server::attach_with(&bus.0, "slow", &cfg).unwrap();
    let mut c = Client::attach(&bus.0, "slow").unwrap();
    let t = c.send_request(b"a").unwrap();
    assert!(matches!(
        c.recv_reply_timeout(t, Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert_eq!(c.try_recv_reply(t).unwrap(), None);
    let req = server.recv_request_timeout(T).unwrap();
    assert_eq!(&*req, b"a");
    assert!(server.reply(req.ticket(), b"A").unwrap());
    drop(req);
    assert_eq!(c.recv_reply_timeout(t, T).unwrap(), b"A");
    // Cancelled: the server's reply is dropped, the slot serves the next call.
    let t = c.send_request(b"b").unwrap();
    let req = server.recv_request_timeout(T).unwrap();
    c.cancel(t).unwrap();
    assert!(!server.reply(req.ticket(), b"B").unwrap());
    drop(req);
    // A call given up before any server took it is never handed out.
    let e = c.call_timeout(b"c", Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    assert!(server.try_recv_request().unwrap().is_none());
    let t = c.send_request(b"d").unwrap();
    let req = server.recv_request_timeout(T).unwrap();
    assert_eq!(&*req, b"d");
    assert!(server.reply(req.ticket(), b"D").unwrap());
    drop(req);
    assert_eq!(c.recv_reply_timeout(t, T).unwrap(), b"D");
}

#[test]
fn a_server_dropped_with_a_call_unanswered_gives_server_gone() {
    let bus = Bus::new("gone");
    let cfg = small();
    let server = Server::attach_with(&bus.0, "g", &cfg).unwrap();
    let mut c = Client::attach(&bus.0, "g").unwrap();
    let t = c.send_request(b"x").unwrap();
    let req = server.recv_request_timeout(T).unwrap();
    drop(req);
    drop(server);
    let e = c.recv_reply_timeout(t, T).unwrap_err();
    assert!(matches!(e, Error::ServerGone { .. }), "{e}");
}

#[test]
fn loaned_replies_and_error_replies() {
    let bus = Bus::new("loan");
    let cfg = small();
    let server = Server::attach_with(&bus.0, "l", &cfg).unwrap();
    let mut c = Client::attach(&bus.0, "l").unwrap();
    let t1 = c.send_request(b"1").unwrap();
    let t2 = c.send_request(b"2").unwrap();
    let t3 = c.send_request(b"3").unwrap();
    let r = server.recv_request_timeout(T).unwrap();
    let mut loan = server.loan_reply(r.ticket(), 5).unwrap().unwrap();
    loan.copy_from_slice(b"hello");
    loan.truncate(4);
    assert!(loan.commit());
    drop(r);
    let r = server.recv_request_timeout(T).unwrap();
    server.reply_error(r.ticket(), "no such thing").unwrap();
    drop(r);
    let r = server.recv_request_timeout(T).unwrap();
    let e = server.reply(r.ticket(), &[0; 301]).unwrap_err();
    assert!(e.to_string().contains("max reply size of 300"), "{e}");
    drop(server.loan_reply(r.ticket(), 3).unwrap().unwrap()); // dropped unfinished
    drop(r);
    assert_eq!(c.recv_reply_timeout(t1, T).unwrap(), b"hell");
    let e = c.recv_reply_timeout(t2, T).unwrap_err();
    assert_eq!(
        e.to_string(),
        "service `l` answered with an error: no such thing"
    );
    let e = c.recv_reply_timeout(t3, T).unwrap_err();
    assert!(
        e.to_string().contains("dropped the reply unfinished"),
        "{e}"
    );
}

#[test]
fn a_second_client_entry_is_refused_then_reused() {
    let bus = Bus::new("limit");
    let cfg = ServiceConfig {
        max_clients: 1,
        ..small()
    };
    let _server = Server::attach_with(&bus.0, "one", &cfg).unwrap();
    let c = Client::attach(&bus.0, "one").unwrap();
    let e = Client::attach(&bus.0, "one").unwrap_err();
    assert!(
        e.to_string().contains("all 1 clients entries are taken"),
        "{e}"
    );
    assert_eq!(c.index(), 0);
    drop(c);
    assert_eq!(Client::attach(&bus.0, "one").unwrap().index(), 0);
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Add {
    a: i64,
    b: i64,
    label: String,
}

#[test]
fn typed_round_trip_and_a_malformed_request() {
    let bus = Bus::new("typed");
    let cfg = small();
    let server: TypedServer<Add, (i64, String)> =
        TypedServer::attach_with(&bus.0, "add", &cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let h = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            server
                .serve_one(Duration::from_millis(20), |r| {
                    (r.a + r.b, r.label.to_uppercase())
                })
                .unwrap();
        }
    });
    let mut c: TypedClient<Add, (i64, String)> = TypedClient::attach(&bus.0, "add").unwrap();
    let req = Add {
        a: 40,
        b: 2,
        label: "sum".into(),
    };
    assert_eq!(c.call_timeout(&req, T).unwrap(), (42, "SUM".to_string()));
    // Raw garbage: the server answers with an error, nobody panics.
    let e = c.raw().call_timeout(&[0xff, 0xff, 0xff], T).unwrap_err();
    assert!(matches!(e, Error::Remote { .. }), "{e}");
    assert!(e.to_string().contains("cannot decode the request"), "{e}");
    // A reply of the wrong type is a client-side decode error.
    let mut wrong: TypedClient<Add, Vec<String>> =
        TypedClient::from_client(Client::attach(&bus.0, "add").unwrap());
    let e = wrong.call_timeout(&req, T).unwrap_err();
    assert!(matches!(e, Error::BadMessage { .. }), "{e}");
    // Too large to encode.
    let big = Add {
        a: 1,
        b: 2,
        label: "x".repeat(300),
    };
    let e = c.call_timeout(&big, T).unwrap_err();
    assert!(e.to_string().contains("max request size"), "{e}");
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn stats_and_listing_see_the_service() {
    let bus = Bus::new("stats");
    let cfg = small();
    let (stop, h) = echo_server(&bus.0, "a/b", &cfg);
    let mut c = Client::attach(&bus.0, "a/b").unwrap();
    c.call_timeout(b"x", T).unwrap();
    assert_eq!(
        crate::service::list_bus_services(&bus.0).unwrap(),
        vec!["a/b".to_string()]
    );
    assert!(crate::daemon::list_bus_topics(&bus.0).unwrap().is_empty());
    let s = crate::service::service_stats(&bus.0, "a/b").unwrap();
    assert_eq!((s.servers, s.clients, s.calls, s.replies), (1, 1, 1, 1));
    assert!(s.server_stats[0].alive && s.client_stats[0].alive);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    crate::service::remove_service(&bus.0, "a/b").unwrap();
    assert!(crate::service::list_bus_services(&bus.0)
        .unwrap()
        .is_empty());
}

#[test]
fn counters_and_latency_add_up_across_clients_gone_and_attached() {
    let bus = Bus::new("counts");
    let cfg = small();
    let server = Server::attach_with(&bus.0, "n", &cfg).unwrap();
    let stats = || crate::service::service_stats(&bus.0, "n").unwrap();
    let s = stats();
    assert_eq!((s.calls, s.latency_samples, s.p50_ns), (0, 0, None));
    // First client: two replies, one error reply, one timeout; then it
    // detaches and its counts must stay in the service's totals.
    {
        let mut c = Client::attach(&bus.0, "n").unwrap();
        for (i, error) in [(0u8, false), (1, true), (2, false)] {
            let t = c.send_request(&[i]).unwrap();
            let r = server.recv_request_timeout(T).unwrap();
            if error {
                server.reply_error(r.ticket(), "refused").unwrap();
            } else {
                server.reply(r.ticket(), &[i]).unwrap();
            }
            drop(r);
            let got = c.recv_reply_timeout(t, T);
            assert_eq!(got.is_err(), error, "{got:?}");
        }
        let e = c
            .call_timeout(b"late", Duration::from_millis(1))
            .unwrap_err();
        assert!(matches!(e, Error::Timeout), "{e}");
        let s = stats();
        assert_eq!(s.client_stats.len(), 1);
        let cs = &s.client_stats[0];
        assert_eq!(
            (cs.calls, cs.replies, cs.errors, cs.timeouts, cs.gone),
            (4, 2, 1, 1, 0)
        );
    }
    // The late request is dropped by the server (its caller gave up).
    assert!(server.try_recv_request().unwrap().is_none());
    // Second client, attached: one reply, then a call its server drops.
    let mut c = Client::attach(&bus.0, "n").unwrap();
    let t = c.send_request(b"x").unwrap();
    let r = server.recv_request_timeout(T).unwrap();
    server.reply(r.ticket(), b"y").unwrap();
    drop(r);
    assert_eq!(c.recv_reply_timeout(t, T).unwrap(), b"y");
    let s = stats();
    assert_eq!(s.client_stats.len(), 1);
    assert_eq!(s.client_stats[0].calls, 1, "the entry starts from zero");
    assert_eq!(
        (
            s.calls,
            s.replies,
            s.errors,
            s.timeouts,
            s.gone,
            s.in_flight
        ),
        (5, 3, 1, 1, 0, 0)
    );
    // Answered calls (replies and error replies) have a round trip each.
    assert_eq!(s.latency_samples, 4);
    let (p50, p90, p99) = (s.p50_ns.unwrap(), s.p90_ns.unwrap(), s.p99_ns.unwrap());
    assert!(p50 > 0 && p50 <= p90 && p90 <= p99, "{s:?}");
    let t = c.send_request(b"z").unwrap();
    assert_eq!(stats().in_flight, 1);
    drop(server.recv_request_timeout(T).unwrap());
    drop(server);
    assert!(matches!(
        c.recv_reply_timeout(t, T).unwrap_err(),
        Error::ServerGone { .. }
    ));
    let s = stats();
    assert_eq!((s.calls, s.gone, s.in_flight), (6, 1, 0));
    assert_eq!(
        s.latency_samples, 4,
        "a call that got no answer has no round trip"
    );
}

/// Runs `f` on a thread of its own while `main` drives the servers; returns
/// both results.
fn beside<A: Send, B>(f: impl FnOnce() -> A + Send, main: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let h = s.spawn(f);
        let b = main();
        (h.join().unwrap(), b)
    })
}

#[test]
fn an_idempotent_call_is_sent_again_when_its_server_leaves_and_a_plain_one_is_not() {
    let bus = Bus::new("retry");
    let cfg = small();
    let a = Server::attach_with(&bus.0, "r", &cfg).unwrap();
    let b = Server::attach(&bus.0, "r").unwrap();
    let mut c = Client::attach(&bus.0, "r").unwrap();
    // A plain call: its server leaves holding it, another server is there,
    // and still the caller gets `ServerGone` (it never said the call may
    // be repeated).
    let (plain, ()) = beside(
        || c.call_timeout(b"once", T),
        || {
            let req = a.recv_request_timeout(T).unwrap();
            assert_eq!(&*req, b"once");
            drop(req);
            drop(a);
        },
    );
    let e = plain.unwrap_err();
    assert!(matches!(e, Error::ServerGone { .. }), "{e}");
    assert!(b.try_recv_request().unwrap().is_none(), "not sent again");
    assert_eq!(c.retries(), 0);
    // An idempotent call: the server holding it leaves, the same request
    // goes to the other server, whose reply ends the call.
    let a2 = Server::attach(&bus.0, "r").unwrap();
    let (idem, ()) = beside(
        || c.call_idempotent_timeout(b"job", T),
        || {
            let req = a2.recv_request_timeout(T).unwrap();
            assert_eq!(&*req, b"job");
            drop(req);
            drop(a2);
            let req = b.recv_request_timeout(T).unwrap();
            assert_eq!(&*req, b"job", "the request, sent again whole");
            let t = req.ticket();
            drop(req);
            assert!(b.reply(t, b"done").unwrap());
        },
    );
    assert_eq!(idem.unwrap(), b"done");
    assert_eq!(c.retries(), 1);
    let s = crate::service::service_stats(&bus.0, "r").unwrap();
    // once (gone), job (gone), job again (replied).
    assert_eq!(
        (s.calls, s.replies, s.gone, s.retries, s.in_flight),
        (3, 1, 2, 1, 0)
    );
    assert_eq!(s.client_stats[0].retries, 1);
    // A client's retries join the service's totals when it leaves.
    drop(c);
    let s = crate::service::service_stats(&bus.0, "r").unwrap();
    assert_eq!((s.clients, s.calls, s.retries), (0, 3, 1));
}

#[test]
fn an_idempotent_call_ends_no_server_when_none_is_left_and_timeout_when_unanswered() {
    let bus = Bus::new("retrynone");
    let cfg = small();
    let a = Server::attach_with(&bus.0, "n", &cfg).unwrap();
    let mut c = Client::attach(&bus.0, "n").unwrap();
    // Unanswered: the budget runs out, the call is given up, nothing is
    // sent again (no server died).
    let e = c
        .call_idempotent_timeout(b"slow", Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    // Given up: the server drops the request unseen.
    assert!(a.try_recv_request().unwrap().is_none());
    // The only server leaves holding the call: nobody to send it to.
    let (idem, ()) = beside(
        || c.call_idempotent_timeout(b"x", T),
        || {
            let req = a.recv_request_timeout(T).unwrap();
            drop(req);
            drop(a);
        },
    );
    let e = idem.unwrap_err();
    assert!(matches!(e, Error::NoServer { .. }), "{e}");
    // A detaching server marks its calls gone before it stops counting
    // as attached: the caller may have sent the call again into the
    // serverless queue, where its next liveness tick ended it `NoServer`.
    let r = c.retries();
    assert!(r <= 1, "sent again {r} times with no server left");
    assert_eq!(c.in_flight(), 0);
    let s = crate::service::service_stats(&bus.0, "n").unwrap();
    assert_eq!((s.calls, s.timeouts, s.gone, s.retries), (2 + r, 1, 1, r));
}

#[test]
fn a_typed_idempotent_call_is_sent_again_and_decoded() {
    let bus = Bus::new("typedretry");
    let cfg = small();
    let a = Server::attach_with(&bus.0, "add", &cfg).unwrap();
    let b: TypedServer<(i64, i64), i64> = TypedServer::attach(&bus.0, "add").unwrap();
    let mut c: TypedClient<(i64, i64), i64> = TypedClient::attach(&bus.0, "add").unwrap();
    let (sum, handled) = beside(
        || c.call_idempotent_timeout(&(40, 2), T),
        || {
            drop(a.recv_request_timeout(T).unwrap());
            drop(a);
            b.serve_one(T, |(x, y)| x + y).unwrap()
        },
    );
    assert!(handled);
    assert_eq!(sum.unwrap(), 42);
    assert_eq!(c.raw().retries(), 1);
}

/// A server whose segment was removed from /dev/shm (the daemon's shutdown,
/// `--clean`, an `rm`) learns it from its next blocking receive, with a
/// short timeout as with a long one; a poll (`try_recv_request`) costs no
/// check and just finds nothing.
#[test]
fn a_removed_service_is_closed_for_its_server() {
    let bus = Bus::new("gone");
    let server = Server::attach_with(&bus.0, "gone", &small()).unwrap();
    assert!(matches!(
        server.recv_request_timeout(Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    crate::service::remove_service(&bus.0, "gone").unwrap();
    assert!(matches!(server.try_recv_request(), Ok(None)));
    for wait in [Duration::from_millis(5), Duration::from_millis(300)] {
        assert!(
            matches!(server.recv_request_timeout(wait), Err(Error::Closed)),
            "{wait:?}"
        );
    }
}

/// The client's triple, as a subscriber's: `call` waits as long as it
/// takes, `call_timeout` at most its timeout, and `try_call` refuses at once
/// when the request queue is full (it takes no timeout), then awaits its
/// reply like `call`.
#[test]
fn call_waits_and_try_call_refuses_a_full_queue() {
    let bus = Bus::new("triple");
    let cfg = small();
    let (stop, h) = echo_server(&bus.0, "echo", &cfg);
    let mut c = Client::attach(&bus.0, "echo").unwrap();
    assert_eq!(c.call(b"x").unwrap(), b"x!");
    assert_eq!(c.try_call(b"y").unwrap(), b"y!");
    assert_eq!(c.call_timeout(b"z", T).unwrap(), b"z!");
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();

    // A server that takes nothing: the queue fills.
    let cfg = ServiceConfig {
        queue_capacity: 2,
        ..small()
    };
    let _idle = Server::attach_with(&bus.0, "idle", &cfg).unwrap();
    let mut c = Client::attach(&bus.0, "idle").unwrap();
    let mut queued = 0;
    while c.try_send_request(b"q").is_ok() {
        queued += 1;
        assert!(queued <= 2, "a 2-cell queue took {queued} requests");
    }
    let e = c.try_call(b"more").unwrap_err();
    assert!(matches!(e, Error::ServiceBusy { .. }), "{e}");
}
