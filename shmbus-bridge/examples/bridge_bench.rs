//! `bridge_bench`: the cost of the Zenoh bridge as a ratio to plain Zenoh,
//! measured in one run on loopback (issue 10's benchmark; results in
//! `docs/bridge.md`).
//!
//! ```text
//! cargo build --release -p shmbusd -p shmbus-bridge --bins
//! cargo run --release -p shmbus-bridge --example bridge_bench [-- N_ROUND_TRIPS N_MESSAGES]
//! ```
//!
//! * **plain Zenoh** — this process and a second copy of itself (role
//!   `zenoh-echo`), two Zenoh peer sessions joined over
//!   `tcp/127.0.0.1`: latency is a 64-byte ping-pong (put → the other
//!   process's subscriber → put back), throughput is 64-byte puts one way,
//!   counted by the other process.
//! * **through shmbus** — two buses, each with its own `shmbusd`, and two
//!   `shmbus-bridge` processes on loopback TCP: a local publisher on bus A →
//!   bridge A → Zenoh → bridge B → a local subscriber on bus B. Latency is
//!   a ping-pong whose return path goes back through both bridges (an echo
//!   thread on bus B publishes each ping into a topic bridge B exports and
//!   bridge A imports); throughput is one way.
//! * **through shmbus, `--batch`** — the same with both bridges exporting
//!   in frames (several ready messages per Zenoh sample).
//!
//! Both sides use the same Zenoh configuration (the bridge's own: peer
//! mode, multicast scouting off, explicit endpoints) and `Block`
//! congestion control. The daemons and bridges are spawned from
//! `$SHMBUS_BENCH_BIN_DIR` if set, else the directory above this example's
//! binary (`target/release` for `target/release/examples/bridge_bench`),
//! else `PATH`. Each bus has a private runtime directory under the system
//! temporary directory, removed at the end with the buses' segments.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use shmbus::{Bus, BusOptions, SubscribeOptions};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

/// Payload size of every message.
const MSG: usize = 64;
/// First byte of the message that ends a throughput run: the receiver
/// answers with how many messages it counted before it.
const END: u8 = 0xFF;
/// Bound on every wait for a route or an answer.
const PATIENCE: Duration = Duration::from_secs(60);
/// Throughput runs per side; the median is reported.
const RUNS: usize = 3;

type Fallible<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let outcome = if args.get(1).map(String::as_str) == Some("zenoh-echo") {
        zenoh_echo(&args[2..])
    } else {
        let num = |i: usize, default: usize| -> Fallible<usize> {
            args.get(i).map_or(Ok(default), |s| {
                s.parse().map_err(|e| format!("argument {i} `{s}`: {e}"))
            })
        };
        num(1, 5_000).and_then(|rt| num(2, 200_000).and_then(|n| driver(rt, n)))
    };
    if let Err(e) = outcome {
        eprintln!("bridge_bench: {e}");
        std::process::exit(1);
    }
}

/// Latency and throughput of one path.
struct Result1 {
    p50_us: f64,
    p99_us: f64,
    msgs_per_s: f64,
}

fn driver(round_trips: usize, messages: usize) -> Fallible<()> {
    println!(
        "bridge_bench: {MSG}-byte messages, {round_trips} round trips, {RUNS} x {messages} messages one way, loopback TCP"
    );
    let plain = plain_zenoh(round_trips, messages)?;
    let bridged = through_bridges(round_trips, messages, false)?;
    let batched = through_bridges(round_trips, messages, true)?;
    println!();
    println!("| path | RTT p50 | RTT p99 | throughput (64 B msgs/s) |");
    println!("|---|---|---|---|");
    for (name, r) in [
        ("plain Zenoh (2 processes)", &plain),
        ("bus A → bridge → Zenoh → bridge → bus B", &bridged),
        ("the same, bridges with `--batch`", &batched),
    ] {
        println!(
            "| {name} | {:.1} µs | {:.1} µs | {:.0} |",
            r.p50_us, r.p99_us, r.msgs_per_s
        );
    }
    for (name, r) in [("", &bridged), (" (`--batch`)", &batched)] {
        let (t, dir) = if r.msgs_per_s <= plain.msgs_per_s {
            (plain.msgs_per_s / r.msgs_per_s, "slower")
        } else {
            (r.msgs_per_s / plain.msgs_per_s, "faster")
        };
        println!(
            "| ratio bridge{name} / plain | {:.2}× | {:.2}× | {t:.2}× {dir} |",
            r.p50_us / plain.p50_us,
            r.p99_us / plain.p99_us,
        );
    }
    Ok(())
}

/// A Zenoh session configured exactly as a bridge's would be with these
/// options.
fn session(args: &[&str]) -> Fallible<zenoh::Session> {
    let mut argv = vec!["bridge_bench", "--export", "**"];
    argv.extend_from_slice(args);
    let opts = shmbus_bridge::BridgeArgs::try_parse_from(argv).map_err(|e| e.to_string())?;
    let config = shmbus_bridge::zconfig::zenoh_config(&opts)?;
    zenoh::open(config)
        .wait()
        .map_err(|e| format!("Zenoh session: {e}"))
}

fn free_port() -> Fallible<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Kills and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn summarize(hist: &Histogram<u64>, rates: &mut [f64]) -> Result1 {
    rates.sort_by(|a, b| a.total_cmp(b));
    Result1 {
        p50_us: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: hist.value_at_quantile(0.99) as f64 / 1000.0,
        msgs_per_s: rates[rates.len() / 2],
    }
}

fn new_histogram() -> Fallible<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- plain Zenoh

/// The second process of the plain Zenoh measurement: echoes
/// `plain/ping` to `plain/pong`, counts `plain/tput` and answers each end
/// marker on `plain/done` with the count.
fn zenoh_echo(args: &[String]) -> Fallible<()> {
    let endpoint = args.first().ok_or("zenoh-echo needs an endpoint")?;
    let s = session(&["--connect", endpoint])?;
    let pong = s
        .declare_publisher("plain/pong")
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| e.to_string())?;
    let done = s
        .declare_publisher("plain/done")
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| e.to_string())?;
    // Callbacks answer on Zenoh's own thread: no extra hop for either side.
    let _ping = s
        .declare_subscriber("plain/ping")
        .callback(move |sample| {
            let _ = pong.put(sample.payload().to_bytes().into_owned()).wait();
        })
        .wait()
        .map_err(|e| e.to_string())?;
    // Zenoh calls the callback from one thread at a time; the atomic only
    // satisfies its `Fn` bound.
    let count = std::sync::atomic::AtomicU64::new(0);
    let _tput = s
        .declare_subscriber("plain/tput")
        .callback(move |sample| {
            let p = sample.payload();
            if p.len() == MSG && p.to_bytes()[0] == END {
                let n = count.swap(0, Ordering::Relaxed);
                let _ = done.put(n.to_le_bytes().to_vec()).wait();
            } else {
                count.fetch_add(1, Ordering::Relaxed);
            }
        })
        .wait()
        .map_err(|e| e.to_string())?;
    // Until the driver closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}

fn plain_zenoh(round_trips: usize, messages: usize) -> Fallible<Result1> {
    let endpoint = format!("tcp/127.0.0.1:{}", free_port()?);
    let s = session(&["--listen", &endpoint])?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let _echo = Reaped(
        Command::new(exe)
            .args(["zenoh-echo", &endpoint])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn the echo process: {e}"))?,
    );
    let ping = s
        .declare_publisher("plain/ping")
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| e.to_string())?;
    let tput = s
        .declare_publisher("plain/tput")
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| e.to_string())?;
    let pong = s
        .declare_subscriber("plain/pong")
        .wait()
        .map_err(|e| e.to_string())?;
    let done = s
        .declare_subscriber("plain/done")
        .wait()
        .map_err(|e| e.to_string())?;

    let payload = [7u8; MSG];
    // Route: ping until a pong comes back.
    let deadline = Instant::now() + PATIENCE;
    loop {
        ping.put(&payload[..]).wait().map_err(|e| e.to_string())?;
        if let Ok(Some(_)) = pong.recv_timeout(Duration::from_millis(100)) {
            break;
        }
        if Instant::now() > deadline {
            return Err("plain Zenoh: no pong within 60 s".into());
        }
    }
    while let Ok(Some(_)) = pong.try_recv() {}

    let mut hist = new_histogram()?;
    for i in 0..round_trips + round_trips / 10 {
        let t = Instant::now();
        ping.put(&payload[..]).wait().map_err(|e| e.to_string())?;
        pong.recv_timeout(PATIENCE)
            .map_err(|e| e.to_string())?
            .ok_or("plain Zenoh: a pong was lost")?;
        // The first tenth warms up.
        if i >= round_trips / 10 {
            hist.record(t.elapsed().as_nanos() as u64)
                .map_err(|e| e.to_string())?;
        }
    }

    let mut end = payload;
    end[0] = END;
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        for _ in 0..messages {
            tput.put(&payload[..]).wait().map_err(|e| e.to_string())?;
        }
        tput.put(&end[..]).wait().map_err(|e| e.to_string())?;
        let answer = done
            .recv_timeout(PATIENCE)
            .map_err(|e| e.to_string())?
            .ok_or("plain Zenoh: no count within 60 s")?;
        let secs = t.elapsed().as_secs_f64();
        let counted = u64::from_le_bytes(
            answer.payload().to_bytes()[..8]
                .try_into()
                .map_err(|_| "bad count")?,
        );
        if counted != messages as u64 {
            return Err(format!(
                "plain Zenoh: {counted} of {messages} messages arrived"
            ));
        }
        rates.push(messages as f64 / secs);
    }
    let r = summarize(&hist, &mut rates);
    println!(
        "plain Zenoh: RTT p50 {:.1} µs p99 {:.1} µs, {:.0} msgs/s",
        r.p50_us, r.p99_us, r.msgs_per_s
    );
    Ok(r)
}

// ------------------------------------------------------------ through shmbus

/// Where the daemon and bridge binaries are.
fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SHMBUS_BENCH_BIN_DIR") {
        return Some(PathBuf::from(d));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    dir.join("shmbus-bridge")
        .is_file()
        .then(|| dir.to_path_buf())
}

fn command(name: &str) -> Command {
    match bin_dir() {
        Some(d) => Command::new(d.join(name)),
        None => Command::new(name),
    }
}

/// One bus: its daemon, its runtime directory, its segments; all gone when
/// dropped.
struct BenchBus {
    name: String,
    dir: PathBuf,
    daemon: Option<Reaped>,
}

impl BenchBus {
    fn start(tag: &str) -> Fallible<BenchBus> {
        let name = format!("bench{}{tag}", std::process::id());
        let dir = std::env::temp_dir().join(format!("shmbus-bridge-bench-{name}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let runtime = dir.join("run");
        let daemon = command("shmbusd")
            .arg("--bus")
            .arg(&name)
            .arg("--runtime-dir")
            .arg(&runtime)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn shmbusd (build it with `cargo build --release -p shmbusd`, or set SHMBUS_BENCH_BIN_DIR): {e}"))?;
        let bus = BenchBus {
            name,
            dir,
            daemon: Some(Reaped(daemon)),
        };
        let sock = shmbus::names::socket_path(&runtime, &bus.name);
        let deadline = Instant::now() + PATIENCE;
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if Instant::now() > deadline {
                return Err(format!("shmbusd did not open {}", sock.display()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(bus)
    }

    fn runtime(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn client(&self) -> Fallible<Bus> {
        Bus::connect_with(&BusOptions {
            name: self.name.clone(),
            runtime_dir: Some(self.runtime()),
        })
        .map_err(|e| format!("bus {}: {e}", self.name))
    }

    fn bridge(&self, args: &[&str]) -> Fallible<Reaped> {
        let child = command("shmbus-bridge")
            .arg("--bus")
            .arg(&self.name)
            .arg("--runtime-dir")
            .arg(self.runtime())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn shmbus-bridge (build it with `cargo build --release -p shmbus-bridge`, or set SHMBUS_BENCH_BIN_DIR): {e}"))?;
        Ok(Reaped(child))
    }
}

impl Drop for BenchBus {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let _ = shmbus::daemon::remove_bus_segments(&self.name);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn through_bridges(round_trips: usize, messages: usize, batch: bool) -> Fallible<Result1> {
    let (ta, tb) = if batch { ("ab", "bb") } else { ("a", "b") };
    let a = BenchBus::start(ta)?;
    let b = BenchBus::start(tb)?;
    let (bus_a, bus_b) = (a.client()?, b.client()?);
    let err = |e: shmbus::Error| e.to_string();
    // The bench's own publisher and subscribers wait the library's default
    // way, spin briefly then sleep on the futex (`SpinThenPark`), stated
    // here so that it is a choice: not `Spin`, which would keep a core of
    // two busy and starve the bridges, nor `Park`, which pays a futex
    // sleep and wake-up on every full ring. Plain Zenoh's side sleeps in
    // its channels and callbacks and does not spin either.
    let wait = shmbus::WaitStrategy::SpinThenPark;
    let sopts = SubscribeOptions {
        wait,
        ..Default::default()
    };
    // Every topic exists before the bridges start, so their first look
    // finds them.
    let mut ping = bus_a.publisher("bench/ping").map_err(err)?;
    let mut tput = bus_a.publisher("bench/tput").map_err(err)?;
    ping.set_wait_strategy(wait);
    tput.set_wait_strategy(wait);
    let mut pong = bus_a.subscriber("bench/pong", sopts).map_err(err)?;
    let mut ping_b = bus_b.subscriber("bench/ping", sopts).map_err(err)?;
    let mut pong_b = bus_b.publisher("bench/pong").map_err(err)?;
    pong_b.set_wait_strategy(wait);
    let mut tput_b = bus_b.subscriber("bench/tput", sopts).map_err(err)?;

    let endpoint = format!("tcp/127.0.0.1:{}", free_port()?);
    let batch_flag: &[&str] = if batch { &["--batch"] } else { &[] };
    let _bridge_a = a.bridge(
        &[
            &[
                "--export",
                "bench/ping",
                "--export",
                "bench/tput",
                "--import",
                "bench/pong",
                "--listen",
                &endpoint,
            ][..],
            batch_flag,
        ]
        .concat(),
    )?;
    let _bridge_b = b.bridge(
        &[
            &[
                "--import",
                "bench/ping",
                "--import",
                "bench/tput",
                "--export",
                "bench/pong",
                "--connect",
                &endpoint,
            ][..],
            batch_flag,
        ]
        .concat(),
    )?;

    // Bus B's side: the echo and the counter, each on its own thread, as
    // separate programs would be.
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = stop.clone();
    let echo = std::thread::spawn(move || {
        while !echo_stop.load(Ordering::Relaxed) {
            match ping_b.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => {
                    let _ = pong_b.send(m.data);
                }
                Err(shmbus::Error::Timeout) => {}
                Err(e) => return Err(format!("echo on bus B: {e}")),
            }
        }
        Ok(())
    });
    let (count_tx, count_rx) = std::sync::mpsc::channel();
    let count_stop = stop.clone();
    let counter = std::thread::spawn(move || {
        let mut count: u64 = 0;
        while !count_stop.load(Ordering::Relaxed) {
            match tput_b.recv_timeout(Duration::from_millis(100)) {
                Ok(m) if m.data.len() == MSG && m.data[0] == END => {
                    let _ = count_tx.send(count);
                    count = 0;
                }
                Ok(_) => count += 1,
                Err(shmbus::Error::Timeout) => {}
                Err(e) => return Err(format!("counter on bus B: {e}")),
            }
        }
        Ok(())
    });

    let outcome = measure_bridged(
        &mut ping,
        &mut pong,
        &mut tput,
        &count_rx,
        round_trips,
        messages,
    );
    stop.store(true, Ordering::Relaxed);
    for t in [echo, counter] {
        t.join().map_err(|_| "a bus B thread panicked")??;
    }
    let r = outcome?;
    println!(
        "through the bridges{}: RTT p50 {:.1} µs p99 {:.1} µs, {:.0} msgs/s",
        if batch { " (--batch)" } else { "" },
        r.p50_us,
        r.p99_us,
        r.msgs_per_s
    );
    Ok(r)
}

fn measure_bridged(
    ping: &mut shmbus::Publisher,
    pong: &mut shmbus::Subscriber,
    tput: &mut shmbus::Publisher,
    counts: &std::sync::mpsc::Receiver<u64>,
    round_trips: usize,
    messages: usize,
) -> Fallible<Result1> {
    let err = |e: shmbus::Error| e.to_string();
    let payload = [7u8; MSG];
    // Route: ping until a pong comes back through both bridges.
    let deadline = Instant::now() + PATIENCE;
    loop {
        ping.send(&payload).map_err(err)?;
        match pong.recv_timeout(Duration::from_millis(100)) {
            Ok(_) => break,
            Err(shmbus::Error::Timeout) => {}
            Err(e) => return Err(e.to_string()),
        }
        if Instant::now() > deadline {
            return Err("through the bridges: no pong within 60 s (see the bridges' log)".into());
        }
    }
    // Late pongs of the probes.
    std::thread::sleep(Duration::from_millis(200));
    while let Ok(Some(_)) = pong.try_recv() {}

    let mut hist = new_histogram()?;
    for i in 0..round_trips + round_trips / 10 {
        let t = Instant::now();
        ping.send(&payload).map_err(err)?;
        pong.recv_timeout(PATIENCE)
            .map_err(|e| format!("through the bridges: pong: {e}"))?;
        if i >= round_trips / 10 {
            hist.record(t.elapsed().as_nanos() as u64)
                .map_err(|e| e.to_string())?;
        }
    }

    let mut end = payload;
    end[0] = END;
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        for _ in 0..messages {
            tput.send(&payload).map_err(err)?;
        }
        tput.send(&end).map_err(err)?;
        let counted = counts
            .recv_timeout(PATIENCE)
            .map_err(|_| "through the bridges: no end marker within 60 s")?;
        let secs = t.elapsed().as_secs_f64();
        if counted != messages as u64 {
            return Err(format!(
                "through the bridges: {counted} of {messages} messages arrived (see the bridges' log)"
            ));
        }
        rates.push(messages as f64 / secs);
    }
    Ok(summarize(&hist, &mut rates))
}
