//! `shmbus-service-client`: a service server or client process for the
//! multi-process tests in `tests/tests/services.rs`, driving the library's
//! services directly (no daemon involved).
//!
//! A request is `tag u64 | k u64 | filler`, the filler a pure function of
//! (tag, k) and of varying length; a server's reply is `server id u32 | tag
//! u64 | k u64 | checksum u64` of the whole request. So a client checks
//! that every reply is the one of *its* request `k` (never another
//! client's, never another call's), that the request arrived intact, and
//! which server answered.
//!
//! ```text
//! shmbus-service-client serve BUS NAME ID MAX_CLIENTS   answer forever ("ready" once attached)
//! shmbus-service-client hold  BUS NAME                  take one request, print "holding", never reply
//! shmbus-service-client call  BUS NAME TAG COUNT DEPTH  COUNT calls, DEPTH pipelined; print a JSON summary
//! shmbus-service-client call-tolerant BUS NAME TAG COUNT
//!                                                       COUNT calls one at a time, each answered
//!                                                       or ended by ServerGone (a server died
//!                                                       holding it); print a JSON summary
//! shmbus-service-client call-one BUS NAME TIMEOUT_MS    one call; print "ok" (its own reply,
//!                                                       checked) or the error's kind
//! shmbus-service-client call-idempotent BUS NAME TIMEOUT_MS
//!                                                       one `call_idempotent`; print "ok server ID
//!                                                       retries N" (its own reply, checked) or the
//!                                                       error's kind
//! shmbus-service-client flood BUS NAME N                send N requests, print "sent N", never receive
//! shmbus-service-client latency BUS NAME N SPIN         N sequential 16-byte calls (SPIN=1: busy-spin
//!                                                       waits); print the round trip's p50 and p99 in ns
//! ```

use std::time::Duration;

use shmbus::service::{Client, Server, ServiceConfig, Ticket};
use shmbus::Error;
use shmbus_tests::{mix, say};

/// Settings every test service is created with.
fn config(max_clients: u32) -> ServiceConfig {
    ServiceConfig {
        queue_capacity: 64,
        max_request_size: 512,
        max_reply_size: 64,
        max_servers: 4,
        max_clients,
        max_in_flight: 128,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("shmbus-service-client: missing argument {i}; see the module doc");
            std::process::exit(2)
        })
    };
    let num = |i: usize| -> u64 {
        arg(i).parse().unwrap_or_else(|_| {
            eprintln!("shmbus-service-client: argument {i} must be a number");
            std::process::exit(2)
        })
    };
    let result = match arg(0) {
        "serve" => serve(arg(1), arg(2), num(3) as u32, num(4) as u32),
        "hold" => hold(arg(1), arg(2)),
        "call-tolerant" => call_tolerant(arg(1), arg(2), num(3), num(4)),
        "call" => call(arg(1), arg(2), num(3), num(4), num(5) as usize),
        "call-one" => call_one(arg(1), arg(2), num(3), false),
        "call-idempotent" => call_one(arg(1), arg(2), num(3), true),
        "flood" => flood(arg(1), arg(2), num(3)),
        "latency" => latency(arg(1), arg(2), num(3), num(4) != 0),
        other => {
            eprintln!("shmbus-service-client: unknown mode `{other}`");
            std::process::exit(2)
        }
    };
    if let Err(e) = result {
        eprintln!("shmbus-service-client: {e}");
        std::process::exit(1);
    }
}

/// FNV-1a over the bytes.
fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Request `k` of client `tag` into `buf`; returns its length (16..=512).
fn request(tag: u64, k: u64, buf: &mut [u8; 512]) -> usize {
    let len = 16 + (mix(tag << 40 ^ k) % 497) as usize;
    buf[..8].copy_from_slice(&tag.to_le_bytes());
    buf[8..16].copy_from_slice(&k.to_le_bytes());
    let seed = mix(tag ^ k.rotate_left(23));
    for (i, b) in buf[16..len].iter_mut().enumerate() {
        *b = (mix(seed ^ (i as u64 / 8)) >> (i % 8 * 8)) as u8;
    }
    len
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(u64::MAX, u64::from_le_bytes)
}

fn serve(bus: &str, name: &str, id: u32, max_clients: u32) -> shmbus::Result<()> {
    let mut server = Server::attach_with(bus, name, &config(max_clients))?;
    if std::env::var_os("SHMBUS_TEST_SPIN").is_some() {
        server.set_wait_strategy(shmbus::WaitStrategy::Spin);
    }
    say("ready");
    let mut out = [0u8; 28];
    server.serve(|req| {
        out[..4].copy_from_slice(&id.to_le_bytes());
        out[4..12].copy_from_slice(&u64_at(req, 0).to_le_bytes());
        out[12..20].copy_from_slice(&u64_at(req, 8).to_le_bytes());
        out[20..28].copy_from_slice(&checksum(req).to_le_bytes());
        out
    })
}

fn hold(bus: &str, name: &str) -> shmbus::Result<()> {
    let server = Server::attach_with(bus, name, &config(8))?;
    say("ready");
    let req = server.recv_request_timeout(Duration::from_secs(120))?;
    say(&format!("holding {}", req.ticket().correlation_id()));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn call(bus: &str, name: &str, tag: u64, count: u64, depth: usize) -> shmbus::Result<()> {
    let mut client = Client::attach(bus, name)?;
    say("ready");
    let timeout = Duration::from_secs(60);
    let mut buf = [0u8; 512];
    let mut inflight: std::collections::VecDeque<(u64, Ticket, u64)> = Default::default();
    let mut per_server = std::collections::BTreeMap::<u32, u64>::new();
    let mut errors: Vec<String> = Vec::new();
    let mut done = 0u64;
    let mut next = 0u64;
    while done < count {
        while next < count && inflight.len() < depth {
            let len = request(tag, next, &mut buf);
            let t = client.send_request_timeout(&buf[..len], timeout)?;
            inflight.push_back((next, t, checksum(&buf[..len])));
            next += 1;
        }
        let (k, t, sum) = inflight.pop_front().expect("a call in flight");
        let reply = client.recv_reply_timeout(t, timeout)?;
        done += 1;
        let server = reply
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .map_or(u32::MAX, u32::from_le_bytes);
        *per_server.entry(server).or_default() += 1;
        let ok = reply.len() == 28
            && u64_at(&reply, 4) == tag
            && u64_at(&reply, 12) == k
            && u64_at(&reply, 20) == sum;
        if !ok && errors.len() < 10 {
            errors.push(format!("call {k}: wrong reply {reply:?}"));
        }
    }
    let summary = serde_json::json!({
        "index": client.index(),
        "calls": done,
        "per_server": per_server.iter().map(|(s, n)| (s.to_string(), n)).collect::<std::collections::BTreeMap<_, _>>(),
        "errors": errors,
    });
    say(&summary.to_string());
    Ok(())
}

fn call_one(bus: &str, name: &str, timeout_ms: u64, idempotent: bool) -> shmbus::Result<()> {
    let mut retries = 0;
    let outcome = Client::attach(bus, name).and_then(|mut c| {
        say("ready");
        let mut buf = [0u8; 512];
        let len = request(7, 0, &mut buf);
        let timeout = Duration::from_millis(timeout_ms);
        let reply = if idempotent {
            c.call_idempotent_timeout(&buf[..len], timeout)
        } else {
            c.call_timeout(&buf[..len], timeout)
        };
        retries = c.retries();
        let sum = checksum(&buf[..len]);
        reply.map(|r| {
            let own =
                r.len() == 28 && u64_at(&r, 4) == 7 && u64_at(&r, 12) == 0 && u64_at(&r, 20) == sum;
            let server = r
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes);
            (own, server)
        })
    });
    let ok;
    say(match &outcome {
        Ok((true, Some(server))) if idempotent => {
            ok = format!("ok server {server} retries {retries}");
            &ok
        }
        Ok((true, _)) => "ok",
        Ok((false, _)) => "wrong reply",
        Err(Error::ServerGone { .. }) => "ServerGone",
        Err(Error::NoServer { .. }) => "NoServer",
        Err(Error::Timeout) => "Timeout",
        Err(e) => {
            say(&format!("error: {e}"));
            "other"
        }
    });
    Ok(())
}

fn flood(bus: &str, name: &str, n: u64) -> shmbus::Result<()> {
    let mut client = Client::attach(bus, name)?;
    let mut buf = [0u8; 512];
    let mut tickets = Vec::new();
    for k in 0..n {
        let len = request(99, k, &mut buf);
        tickets.push(client.send_request_timeout(&buf[..len], Duration::from_secs(60))?);
    }
    say(&format!("sent {n} index {}", client.index()));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn latency(bus: &str, name: &str, n: u64, spin: bool) -> shmbus::Result<()> {
    let mut client = Client::attach(bus, name)?;
    if spin {
        client.set_wait_strategy(shmbus::WaitStrategy::Spin);
    }
    let req = [7u8; 16];
    let mut ns: Vec<u64> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = std::time::Instant::now();
        client.call_timeout_with(&req, Duration::from_secs(60), |_| ())?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 - 1.0) * q) as usize];
    say(&format!("calls {n} p50_ns {} p99_ns {}", at(0.5), at(0.99)));
    Ok(())
}

fn call_tolerant(bus: &str, name: &str, tag: u64, count: u64) -> shmbus::Result<()> {
    let mut client = Client::attach(bus, name)?;
    say("ready");
    let mut buf = [0u8; 512];
    let (mut replied, mut gone) = (0u64, 0u64);
    let mut errors: Vec<String> = Vec::new();
    for k in 0..count {
        let len = request(tag, k, &mut buf);
        let sum = checksum(&buf[..len]);
        match client.call_timeout(&buf[..len], Duration::from_secs(60)) {
            Ok(reply) => {
                replied += 1;
                let ok = reply.len() == 28
                    && u64_at(&reply, 4) == tag
                    && u64_at(&reply, 12) == k
                    && u64_at(&reply, 20) == sum;
                if !ok && errors.len() < 10 {
                    errors.push(format!("call {k}: wrong reply {reply:?}"));
                }
            }
            Err(Error::ServerGone { .. }) => gone += 1,
            Err(e) => errors.push(format!("call {k}: {e}")),
        }
    }
    let summary = serde_json::json!({ "replied": replied, "gone": gone, "errors": errors });
    say(&summary.to_string());
    Ok(())
}
