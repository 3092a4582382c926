//! `shmbus-test-client`: a publisher or subscriber process for the
//! multi-process tests in `tests/tests/`, driving the library directly on a
//! topic the test created (no daemon involved).
//!
//! Payloads are a pure function of (publisher id, message index): a
//! subscriber recomputes every byte, so a torn, mixed or stale message is
//! caught, not just a wrong checksum.
//!
//! ```text
//! shmbus-test-client pub  BUS TOPIC ID COUNT      publish COUNT messages, print "published N"
//! shmbus-test-client sub  BUS TOPIC TOTAL         read until sequence TOTAL, print a JSON summary
//! shmbus-test-client hold-loan BUS TOPIC          loan a slot, print "loaned SEQ", never commit
//! shmbus-test-client idle-sub  BUS TOPIC          attach, print "ready", never read
//! shmbus-test-client pub-until-closed BUS TOPIC ID publish until the topic closes
//! shmbus-test-client victim-pub BUS TOPIC ID COUNT
//!                                                  as `pub`, and drops a loan before every
//!                                                  4th message (the abandon path): the crash-
//!                                                  point driver's dying publisher
//! shmbus-test-client victim-sub BUS TOPIC COUNT    read COUNT messages (parking when idle),
//!                                                  then detach and print "read COUNT"
//! shmbus-test-client sub-until-closed BUS TOPIC STRICT
//!                                                  read until the topic closes, print a JSON
//!                                                  summary; STRICT=1 also flags any gap in a
//!                                                  publisher's indices (block policy)
//! shmbus-test-client pattern-sub RUNDIR BUS PATTERN COUNT
//!                                                  subscribe to PATTERN through the daemon,
//!                                                  read COUNT messages, print "read N lost L"
//! shmbus-test-client forge BUS TOPIC MODE         create a valid-looking topic with both files
//!                                                  in octal MODE (as whoever runs it: an
//!                                                  attacker squatting the names), print
//!                                                  "forged NONCE" and leave it in /dev/shm
//! ```
//!
//! Every mode prints `ready` once attached, so the test can order the
//! processes without sleeping.

use std::time::Duration;

use shmbus::{Error, Publisher, SubscribeOptions, Subscriber};
use shmbus_tests::{mix, say};

/// Bytes at the start of every payload: publisher id (u32) and index (u64).
const HEADER: usize = 12;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("shmbus-test-client: missing argument {i}; see the module doc");
            std::process::exit(2)
        })
    };
    let num = |i: usize| -> u64 {
        arg(i).parse().unwrap_or_else(|_| {
            eprintln!("shmbus-test-client: argument {i} must be a number");
            std::process::exit(2)
        })
    };
    let result = match arg(0) {
        "pub" => publish(arg(1), arg(2), num(3) as u32, num(4)),
        "forge" => forge(arg(1), arg(2), arg(3)),
        "sub" => subscribe(arg(1), arg(2), num(3)),
        "hold-loan" => hold_loan(arg(1), arg(2)),
        "idle-sub" => idle_sub(arg(1), arg(2)),
        "pub-until-closed" => publish_until_closed(arg(1), arg(2), num(3) as u32),
        "sub-until-closed" => subscribe_until_closed(arg(1), arg(2), num(3) != 0),
        "victim-pub" => victim_publish(arg(1), arg(2), num(3) as u32, num(4)),
        "victim-sub" => victim_subscribe(arg(1), arg(2), num(3)),
        "pattern-sub" => pattern_subscribe(arg(1), arg(2), arg(3), num(4)),
        other => {
            eprintln!("shmbus-test-client: unknown mode `{other}`");
            std::process::exit(2)
        }
    };
    if let Err(e) = result {
        eprintln!("shmbus-test-client: {e}");
        std::process::exit(1);
    }
}

/// A squatter's topic: valid headers, in files of the caller's uid.
fn forge(bus: &str, topic: &str, mode: &str) -> shmbus::Result<()> {
    let mode = u32::from_str_radix(mode, 8)
        .map_err(|_| Error::InvalidConfig(format!("mode `{mode}` is not octal")))?;
    let perms = shmbus::daemon::SegmentPerms {
        data_mode: mode,
        subs_mode: mode,
        gid: None,
    };
    let owner =
        shmbus::daemon::TopicOwner::create(bus, topic, &shmbus::TopicConfig::default(), &perms)?;
    // The handle only maps the files: dropping it leaves them in /dev/shm.
    say(&format!("forged {:#x}", owner.identity()?.nonce));
    Ok(())
}

/// Length of message `k` of publisher `id`, in `HEADER..=max`.
fn payload_len(id: u32, k: u64, max: usize) -> usize {
    let span = (max - HEADER + 1) as u64;
    HEADER + (mix(u64::from(id) << 48 ^ k) % span) as usize
}

/// Fills `buf` with message `k` of publisher `id`.
fn fill(id: u32, k: u64, buf: &mut [u8]) {
    buf[..4].copy_from_slice(&id.to_le_bytes());
    buf[4..HEADER].copy_from_slice(&k.to_le_bytes());
    let seed = mix(u64::from(id) << 40 ^ k.rotate_left(17));
    for (i, chunk) in buf[HEADER..].chunks_mut(8).enumerate() {
        let word = mix(seed ^ i as u64).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

fn publish(bus: &str, topic: &str, id: u32, count: u64) -> shmbus::Result<()> {
    let mut p = Publisher::attach(bus, topic)?;
    let max = p.max_msg_size().min(512);
    let mut buf = vec![0u8; max];
    say("ready");
    for k in 0..count {
        let len = payload_len(id, k, max);
        fill(id, k, &mut buf[..len]);
        // Alternate the copy path and the zero-copy path.
        if k % 2 == 0 {
            p.send(&buf[..len])?;
        } else {
            let mut loan = p.loan(len)?;
            loan.copy_from_slice(&buf[..len]);
            loan.commit();
        }
    }
    say(&format!("published {count}"));
    Ok(())
}

/// What a subscriber saw, printed as one JSON line.
#[derive(Default)]
struct Summary {
    delivered: u64,
    lost: u64,
    first_seq: Option<u64>,
    errors: Vec<String>,
    /// Per publisher id: (messages seen, last index seen).
    per_pub: std::collections::BTreeMap<u32, (u64, u64)>,
    checksum: u64,
}

fn subscribe(bus: &str, topic: &str, total: u64) -> shmbus::Result<()> {
    let mut s = Subscriber::attach(bus, topic, SubscribeOptions::default())?;
    let max = s.config().max_msg_size as usize;
    let mut expect = vec![0u8; max];
    let mut sum = Summary::default();
    let mut last_seq: Option<u64> = None;
    say("ready");
    // Nothing may take longer than this without any progress at all.
    let stall = Duration::from_secs(60);
    while s.next_seq() < total {
        match s.recv_timeout(stall) {
            Ok(m) => {
                sum.delivered += 1;
                sum.first_seq.get_or_insert(m.seq);
                if let Some(prev) = last_seq {
                    if m.seq <= prev {
                        sum.errors.push(format!("seq {} after {prev}", m.seq));
                    }
                }
                last_seq = Some(m.seq);
                check(m.data, max, &mut expect, &mut sum, false);
            }
            Err(Error::Lagged(n)) => sum.lost += n,
            Err(e) => {
                sum.errors.push(format!("recv: {e}"));
                break;
            }
        }
    }
    print_summary(&sum, None, s.next_seq(), 0);
    Ok(())
}

/// Verifies one payload byte for byte and tracks per-publisher order.
fn check(data: &[u8], max: usize, expect: &mut [u8], sum: &mut Summary, strict: bool) {
    if data.len() < HEADER {
        sum.errors
            .push(format!("short message of {} bytes", data.len()));
        return;
    }
    let id = u32::from_le_bytes(data[..4].try_into().expect("4 bytes"));
    let k = u64::from_le_bytes(data[4..HEADER].try_into().expect("8 bytes"));
    let want_len = payload_len(id, k, max.min(512));
    if data.len() != want_len {
        sum.errors.push(format!(
            "pub {id} msg {k}: {} bytes, want {want_len}",
            data.len()
        ));
        return;
    }
    fill(id, k, &mut expect[..want_len]);
    if data != &expect[..want_len] {
        sum.errors
            .push(format!("pub {id} msg {k}: torn or corrupt payload"));
        return;
    }
    sum.checksum = sum.checksum.wrapping_add(mix(u64::from(id) << 48 ^ k));
    let entry = sum.per_pub.entry(id).or_insert((0, u64::MAX));
    if entry.1 != u64::MAX && k <= entry.1 {
        sum.errors
            .push(format!("pub {id}: msg {k} after msg {} (order)", entry.1));
    } else if strict && entry.1 != u64::MAX && k != entry.1 + 1 {
        sum.errors
            .push(format!("pub {id}: msg {k} after msg {} (gap)", entry.1));
    }
    entry.0 += 1;
    entry.1 = k;
}

fn hold_loan(bus: &str, topic: &str) -> shmbus::Result<()> {
    let mut p = Publisher::attach(bus, topic)?;
    let mut loan = p.loan(8)?;
    loan.copy_from_slice(b"unfinish");
    say(&format!("loaned {}", loan.seq()));
    // Parked between claim and commit until the test kills us.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn idle_sub(bus: &str, topic: &str) -> shmbus::Result<()> {
    let _s = Subscriber::attach(bus, topic, SubscribeOptions::default())?;
    say("ready");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Prints a subscriber's summary as one JSON line.
fn print_summary(sum: &Summary, start: Option<u64>, next_seq: u64, skipped: u64) {
    let per_pub: Vec<String> = sum
        .per_pub
        .iter()
        .map(|(id, (n, last))| format!("\"{id}\":[{n},{last}]"))
        .collect();
    let errors: Vec<String> = sum
        .errors
        .iter()
        .take(10)
        .map(|e| format!("{e:?}"))
        .collect();
    let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    say(&format!(
        "{{\"delivered\":{},\"lost\":{},\"skipped\":{skipped},\"start\":{},\"first_seq\":{},\"next_seq\":{next_seq},\"checksum\":{},\"per_pub\":{{{}}},\"errors\":[{}]}}",
        sum.delivered,
        sum.lost,
        opt(start),
        opt(sum.first_seq),
        sum.checksum,
        per_pub.join(","),
        errors.join(",")
    ));
}

fn publish_until_closed(bus: &str, topic: &str, id: u32) -> shmbus::Result<()> {
    let mut p = Publisher::attach(bus, topic)?;
    let max = p.max_msg_size().min(512);
    let mut buf = vec![0u8; max];
    say("ready");
    // A blocked publish waits at most this long: a subscriber that died
    // holding the ring is reaped by the daemon well within it.
    let patience = Duration::from_secs(60);
    for k in 0.. {
        let len = payload_len(id, k, max);
        fill(id, k, &mut buf[..len]);
        let sent = if k % 3 == 0 {
            p.loan_timeout(len, patience).map(|mut loan| {
                loan.copy_from_slice(&buf[..len]);
                loan.commit()
            })
        } else {
            p.send_timeout(&buf[..len], patience)
        };
        match sent {
            Ok(_) => {}
            Err(Error::Closed) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn subscribe_until_closed(bus: &str, topic: &str, strict: bool) -> shmbus::Result<()> {
    let mut s = Subscriber::attach(bus, topic, SubscribeOptions::default())?;
    let start = s.next_seq();
    let max = s.config().max_msg_size as usize;
    let mut expect = vec![0u8; max];
    let mut sum = Summary::default();
    let mut last_seq: Option<u64> = None;
    say("ready");
    loop {
        match s.recv_timeout(Duration::from_secs(120)) {
            Ok(m) => {
                sum.delivered += 1;
                sum.first_seq.get_or_insert(m.seq);
                if last_seq.is_some_and(|prev| m.seq <= prev) {
                    sum.errors.push(format!("seq {} after {last_seq:?}", m.seq));
                }
                last_seq = Some(m.seq);
                check(m.data, max, &mut expect, &mut sum, strict);
            }
            Err(Error::Lagged(n)) => sum.lost += n,
            Err(Error::Closed) => break,
            Err(e) => {
                sum.errors.push(format!("recv: {e}"));
                break;
            }
        }
    }
    print_summary(&sum, Some(start), s.next_seq(), s.skipped());
    Ok(())
}

fn victim_publish(bus: &str, topic: &str, id: u32, count: u64) -> shmbus::Result<()> {
    let mut p = Publisher::attach(bus, topic)?;
    let max = p.max_msg_size().min(512);
    let mut buf = vec![0u8; max];
    say("ready");
    let patience = Duration::from_secs(60);
    for k in 0..count {
        if k % 4 == 3 {
            drop(p.loan_timeout(8, patience)?); // abandoned: subscribers skip it
        }
        let len = payload_len(id, k, max);
        fill(id, k, &mut buf[..len]);
        if k % 2 == 0 {
            p.send_timeout(&buf[..len], patience)?;
        } else {
            let mut loan = p.loan_timeout(len, patience)?;
            loan.copy_from_slice(&buf[..len]);
            loan.commit();
        }
    }
    say(&format!("published {count}"));
    Ok(())
}

fn victim_subscribe(bus: &str, topic: &str, count: u64) -> shmbus::Result<()> {
    let mut s = Subscriber::attach(
        bus,
        topic,
        SubscribeOptions {
            wait: shmbus::WaitStrategy::Park,
            ..SubscribeOptions::default()
        },
    )?;
    say("ready");
    let mut read = 0;
    while read < count {
        match s.recv_timeout(Duration::from_secs(120)) {
            Ok(_) => read += 1,
            Err(Error::Lagged(_)) => {}
            Err(e) => return Err(e),
        }
    }
    drop(s);
    say(&format!("read {read}"));
    Ok(())
}

fn pattern_subscribe(rundir: &str, bus: &str, pattern: &str, count: u64) -> shmbus::Result<()> {
    let bus = shmbus::Bus::connect_with(&shmbus::BusOptions {
        name: bus.to_string(),
        runtime_dir: Some(rundir.into()),
    })?;
    let mut s = bus.subscribe_pattern(pattern, SubscribeOptions::default())?;
    say("ready");
    let (mut read, mut lost) = (0u64, 0u64);
    while read < count {
        match s.recv_timeout(Duration::from_secs(60)) {
            Ok(_) => read += 1,
            Err(Error::Lagged(n)) => lost += n,
            Err(e) => return Err(e),
        }
    }
    say(&format!("read {read} lost {lost}"));
    Ok(())
}
