//! End-to-end tests of the control socket under hostile and heavy use:
//! garbage, giant length prefixes, truncated frames, clients that stall
//! mid-request or never read, hundreds of connections, the connection limit.
//! Through all of it the daemon answers everyone else and its memory stays
//! bounded.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use shmbus::control::MAX_REQUEST_LEN;
use shmbus_tests::{wait_until, TestBus};

const WAIT: Duration = Duration::from_secs(30);

fn connect(bus: &TestBus) -> UnixStream {
    let s = UnixStream::connect(shmbus::names::socket_path(&bus.runtime_dir, &bus.name))
        .expect("connect to the control socket");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The next reply frame as JSON, or `None` at end of stream. Panics when
/// the daemon neither answers nor closes within [`WAIT`].
fn reply(s: &mut UnixStream) -> Option<serde_json::Value> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("no reply and no close: {e}"),
    }
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut body).expect("reply body");
    Some(serde_json::from_slice(&body).expect("reply is JSON"))
}

fn error_kind(v: &serde_json::Value) -> &str {
    v["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

/// The daemon is still well: a library client lists topics and a message
/// goes through a topic it opens.
fn assert_serves(bus: &TestBus) {
    let api = bus.client();
    let mut s = api
        .subscriber("probe", shmbus::SubscribeOptions::default())
        .expect("subscriber");
    let mut p = api.publisher("probe").expect("publisher");
    p.send(b"ping").unwrap();
    assert_eq!(s.recv_timeout(WAIT).unwrap().data, b"ping");
    assert!(api.topics().unwrap().iter().any(|t| t.topic == "probe"));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn hostile_requests_get_an_error_or_a_close_and_never_stop_others() {
    let mut bus = TestBus::new("hostile");
    let config = bus.dir().join("shmbusd.toml");
    std::fs::write(&config, "[daemon]\nrequest_timeout_ms = 3000\n").unwrap();
    bus.start_daemon_with(&["--config", config.to_str().unwrap()]);
    let pid = bus.daemon_pid().unwrap();
    assert_serves(&bus);
    let rss_before = rss_kib(pid);

    // Slow clients: half a length prefix, and a prefix with part of its body;
    // then silence. They hold no one up.
    let mut loris_prefix = connect(&bus);
    loris_prefix.write_all(&[0x10, 0x00]).unwrap();
    let mut loris_body = connect(&bus);
    loris_body.write_all(&100u32.to_le_bytes()).unwrap();
    loris_body.write_all(br#"{"v":1,"id":1,"#).unwrap();
    assert_serves(&bus);

    // Framed garbage: an error reply, and the connection goes on.
    let mut s = connect(&bus);
    for (body, kind, id) in [
        (&b"not json at all"[..], "bad-request", 0),
        (b"\xff\xfe\x00\x01", "bad-request", 0),
        (br#"{"v":1,"id":5,"op":"fly"}"#, "bad-request", 5),
        (br#"{"v":1,"id":6,"op":"open","topic":"../etc","role":"publish"}"#, "invalid-name", 6),
        (br#"{"v":1,"id":7,"op":"open","topic":"a","role":"admin"}"#, "bad-request", 7),
        (br#"{"v":99,"id":8,"op":"list"}"#, "unsupported-version", 8),
        (br#"{"id":9,"op":"list"}"#, "bad-request", 9),
        (br#"{"v":1,"id":10,"op":"create","topic":"t","config":{"capacity":3,"max_msg_size":1,"policy":"block","max_publishers":1,"max_subscribers":1}}"#, "invalid-config", 10),
    ] {
        s.write_all(&frame(body)).unwrap();
        let r = reply(&mut s).expect("a reply");
        assert_eq!(error_kind(&r), kind, "{r}");
        assert_eq!(r["id"], id, "{r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty(), "{r}");
    }
    // Deep nesting and a body exactly at the limit are errors, not crashes.
    let mut deep = br#"{"v":1,"id":11,"op":"list","x":"#.to_vec();
    deep.resize(MAX_REQUEST_LEN, b'[');
    s.write_all(&frame(&deep)).unwrap();
    assert_eq!(error_kind(&reply(&mut s).unwrap()), "bad-request");
    s.write_all(&frame(&vec![b'x'; MAX_REQUEST_LEN])).unwrap();
    assert_eq!(error_kind(&reply(&mut s).unwrap()), "bad-request");
    // ...and the same connection still serves a valid request.
    s.write_all(&frame(br#"{"v":1,"id":12,"op":"list"}"#))
        .unwrap();
    let r = reply(&mut s).unwrap();
    assert_eq!(
        (r["id"].as_u64(), r["ok"]["reply"].as_str()),
        (Some(12), Some("topics"))
    );

    // Unframed bytes and oversized prefixes cannot be resynchronised: an
    // error reply, then the connection is closed.
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: shmbus\r\n\r\n"[..],
        &u32::MAX.to_le_bytes(),
        &(MAX_REQUEST_LEN as u32 + 1).to_le_bytes(),
    ] {
        let mut s = connect(&bus);
        s.write_all(junk).unwrap();
        let r = reply(&mut s).expect("an error reply before the close");
        assert_eq!(error_kind(&r), "bad-request", "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("limit"),
            "{r}"
        );
        assert!(reply(&mut s).is_none(), "not closed after {junk:?}");
    }

    // A truncated frame, then end of stream: closed without an answer.
    let mut s = connect(&bus);
    s.write_all(&100u32.to_le_bytes()).unwrap();
    s.write_all(b"{\"v\":1,").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(reply(&mut s).is_none());

    // A client that pipelines requests and never reads its replies: the
    // daemon stops reading it (back-pressure) and serves the others.
    let mut hog = connect(&bus);
    hog.set_nonblocking(true).unwrap();
    let list = frame(br#"{"v":1,"id":13,"op":"stats"}"#);
    let mut stuffed = 0usize;
    // Until the socket is full (the last frame may stay partial).
    'stuff: for _ in 0..200_000 {
        let mut off = 0;
        while off < list.len() {
            match hog.write(&list[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break 'stuff,
                Err(e) => panic!("write: {e}"),
            }
        }
        stuffed += 1;
    }
    assert!(stuffed > 100, "only {stuffed} requests fit");
    assert_serves(&bus);

    // Many connections that announce 4 GiB: nothing is allocated for them.
    for _ in 0..200 {
        let mut s = connect(&bus);
        s.write_all(&u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(error_kind(&reply(&mut s).unwrap()), "bad-request");
    }
    assert_serves(&bus);

    // The slow clients are cut off after request_timeout_ms.
    for loris in [&mut loris_prefix, &mut loris_body] {
        assert!(reply(loris).is_none(), "a stalled client was not closed");
    }
    drop(hog);
    assert_serves(&bus);
    assert!(bus.daemon().unwrap().try_wait().unwrap().is_none());
    let rss_after = rss_kib(pid);
    eprintln!("shmbusd RSS: {rss_before} KiB before, {rss_after} KiB after the hostile clients");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "shmbusd grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[test]
fn five_hundred_concurrent_connections_are_all_served() {
    let mut bus = TestBus::new("many");
    bus.start_daemon();
    let pid = bus.daemon_pid().unwrap();
    let rss_before = rss_kib(pid);
    let mut conns: Vec<UnixStream> = (0..500).map(|_| connect(&bus)).collect();
    // Every connection asks first, then every one reads: all 500 are open
    // and waiting at once.
    for (i, s) in conns.iter_mut().enumerate() {
        let body = match i % 3 {
            0 => format!(r#"{{"v":1,"id":{i},"op":"hello","client":"c{i}"}}"#),
            1 => format!(
                r#"{{"v":1,"id":{i},"op":"open","topic":"many/{}","role":"subscribe"}}"#,
                i % 10
            ),
            _ => format!(r#"{{"v":1,"id":{i},"op":"list"}}"#),
        };
        s.write_all(&frame(body.as_bytes())).unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let r = reply(s).unwrap_or_else(|| panic!("connection {i} closed"));
        assert_eq!(r["id"], i, "{r}");
        let want = ["hello", "opened", "topics"][i % 3];
        assert_eq!(r["ok"]["reply"], want, "{r}");
        if i % 3 == 0 {
            assert_eq!(r["ok"]["pid"], pid, "{r}");
        }
    }
    // While all of them stay open, others are served.
    assert_serves(&bus);
    assert_eq!(bus.client().topics().unwrap().len(), 11);
    // A second round on the same connections.
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(&frame(
            format!(
                r#"{{"v":1,"id":{},"op":"stats","topic":"many/1"}}"#,
                i + 1000
            )
            .as_bytes(),
        ))
        .unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let r = reply(s).unwrap();
        assert_eq!(
            (r["id"].as_u64(), r["ok"]["reply"].as_str()),
            (Some(i as u64 + 1000), Some("stats"))
        );
    }
    let rss_after = rss_kib(pid);
    eprintln!("shmbusd RSS: {rss_before} KiB before, {rss_after} KiB with 500 connections");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
}

#[test]
fn connections_beyond_the_limit_are_told_busy() {
    let mut bus = TestBus::new("busy");
    let config = bus.dir().join("shmbusd.toml");
    std::fs::write(&config, "[daemon]\nmax_connections = 3\n").unwrap();
    bus.start_daemon_with(&["--config", config.to_str().unwrap()]);
    // Three connections the daemon has answered on, so all three count. One
    // may be refused as busy while the daemon still counts the probe
    // connection of `wait_ready` (closed, its end not yet read: seen under
    // load in CI); then it is opened again.
    let held: Vec<UnixStream> = (0..3)
        .map(|i| {
            let mut answered = None;
            let ok = wait_until(WAIT, || {
                let mut s = connect(&bus);
                let hello = format!(r#"{{"v":1,"id":{i},"op":"hello","client":"held{i}"}}"#);
                s.write_all(&frame(hello.as_bytes())).unwrap();
                let served = reply(&mut s).is_some_and(|r| r["ok"]["reply"] == "hello");
                if served {
                    answered = Some(s);
                }
                served
            });
            assert!(ok, "held connection {i} never served");
            answered.unwrap()
        })
        .collect();
    let mut last = String::new();
    let busy = wait_until(WAIT, || {
        match shmbus::Bus::connect_with(&shmbus::BusOptions {
            name: bus.name.clone(),
            runtime_dir: Some(bus.runtime_dir.clone()),
        }) {
            Err(e) => {
                last = e.to_string();
                true
            }
            Ok(_) => false,
        }
    });
    assert!(busy, "a fourth connection was served");
    assert!(last.contains("max_connections"), "{last}");
    drop(held);
    // Once they are gone, clients are served again.
    let served = wait_until(WAIT, || {
        shmbus::Bus::connect_with(&shmbus::BusOptions {
            name: bus.name.clone(),
            runtime_dir: Some(bus.runtime_dir.clone()),
        })
        .is_ok()
    });
    assert!(served, "not served after the held connections closed");
    let out = bus.cli().args(["topics"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}
