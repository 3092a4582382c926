//! The bridge process: connects to the local bus, opens the Zenoh session,
//! starts the export thread, declares the import callbacks, and waits for a
//! signal.
//!
//! Threads: one exporter (only if there are `--export` patterns), one per
//! imported service and one per exported service plus their discovery
//! thread (see [`crate::service`]), Zenoh's
//! own runtime (whose subscriber callbacks do the importing, see
//! [`crate::import`]), and this main thread, which alone takes the signals
//! (SIGINT and SIGTERM stop the bridge, SIGUSR1 logs its counters) and logs
//! peers that connect and disconnect. The exporter blocks those signals, and
//! so does each Zenoh thread the first time it runs an import callback, so
//! a signal never interrupts one of their waits.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use tracing::{info, warn};
use zenoh::Wait;

use crate::export::Exporter;
use crate::import::Importer;
use crate::options::BridgeArgs;
use crate::own::OwnPublished;
use crate::service::ServiceBridge;
use crate::stats::Stats;
use crate::tag::{random_instance, stable_origin};
use crate::zconfig::zenoh_config;
use shmbus::Pattern;

/// How often the main thread looks at signals and at the peer list.
const TICK: Duration = Duration::from_millis(100);
const PEER_CHECK: Duration = Duration::from_secs(1);

/// Runs the bridge until SIGINT or SIGTERM. The error is one line for the
/// user (what failed, what to do).
pub fn run(args: BridgeArgs) -> Result<(), String> {
    if args.exports.is_empty()
        && args.imports.is_empty()
        && args.export_services.is_empty()
        && args.import_services.is_empty()
    {
        return Err(
            "nothing to bridge: give at least one --export, --import, --export-service or --import-service (see `shmbus-bridge --help`)"
                .to_string(),
        );
    }
    let create = args.import_topic_config()?;
    if create.is_some() && args.imports.is_empty() {
        return Err(
            "--capacity/--policy/--max-msg-size set up topics the importer creates: give an --import pattern too"
                .to_string(),
        );
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let bus_opts = args.bus_options();
    let connect = || shmbus::Bus::connect_with(&bus_opts).map_err(|e| e.to_string());
    let export_bus = connect()?;
    let import_bus = connect()?;

    let config = zenoh_config(&args)?;
    let session = zenoh::open(config)
        .wait()
        .map_err(|e| format!("cannot open the Zenoh session: {e} (check --listen/--connect endpoints and --zenoh-config)"))?;
    let origin = stable_origin(&args.bus, args.origin.as_deref());
    let instance = random_instance();
    info!(
        "bridging bus `{}` as origin {origin:016x} (instance {instance:016x}), Zenoh id {}, keys `{}/TOPIC`",
        args.bus,
        session.zid(),
        args.key_prefix
    );

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let own = Arc::new(OwnPublished::default());
    let mut workers = Vec::new();

    // Declared before the exporter starts so that an import is recorded
    // before the exporter could see it.
    let mut zenoh_subscribers = Vec::new();
    if !args.imports.is_empty() {
        let importer = Arc::new(Importer {
            bus: import_bus,
            patterns: args.imports.clone(),
            exports: args.exports.clone(),
            key_prefix: args.key_prefix.clone(),
            origin,
            own: own.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            publish_timeout: args.publish_timeout(),
            create,
            state: Default::default(),
        });
        for pattern in &args.imports {
            let key = crate::pattern::key_expr(pattern, &args.key_prefix);
            let importer = importer.clone();
            let sub = session
                .declare_subscriber(key.clone())
                // Imports on Zenoh's reception thread, which a full local
                // `block` topic stalls: the back-pressure described in
                // `import`.
                .callback(move |sample| {
                    block_bridge_signals_once();
                    importer.on_sample(&sample);
                })
                .wait()
                .map_err(|e| format!("cannot subscribe to Zenoh key `{key}`: {e}"))?;
            info!("importing `{key}` into bus `{}`", args.bus);
            zenoh_subscribers.push(sub);
        }
    }
    if !args.exports.is_empty() {
        let exporter = Exporter {
            bus: export_bus,
            session: session.clone(),
            patterns: args.exports.clone(),
            key_prefix: args.key_prefix.clone(),
            origin,
            instance,
            own: own.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            batch: args.batch,
        };
        workers.push(spawn("export", move || exporter.run())?);
    }

    let services = ServiceBridge {
        bus: args.bus.clone(),
        session: session.clone(),
        key_prefix: args.key_prefix.clone(),
        call_timeout: args.call_timeout(),
        stop: stop.clone(),
    };
    for name in &args.import_services {
        let services = services.clone();
        let name = name.clone();
        workers.push(spawn(&format!("svc-import {name}"), move || {
            services.import_one(&name)
        })?);
    }
    if !args.export_services.is_empty() {
        let patterns = args.export_services.clone();
        let imported: Vec<Pattern> = args
            .import_services
            .iter()
            .filter_map(|n| Pattern::parse(n).ok())
            .collect();
        let poll = args.poll_interval();
        workers.push(spawn("svc-export", move || {
            services.run_exports(
                &patterns,
                &imported,
                poll,
                &|name, body| match spawn(&name, body) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        warn!("{e}");
                        None
                    }
                },
            )
        })?);
    }

    let mut peers = BTreeSet::new();
    let mut failed = None;
    let mut next_peer_check = Instant::now();
    'main: loop {
        for sig in signals.pending() {
            match sig {
                SIGUSR1 => info!("counters: {}", stats.summary()),
                _ => {
                    info!("stopping on signal {sig}");
                    break 'main;
                }
            }
        }
        // A worker ends only on the stop flag; one that ended otherwise
        // panicked (its message is on stderr): stop rather than run half a
        // bridge.
        if workers.iter().any(|w| w.is_finished()) {
            failed = Some(
                "a bridge thread stopped unexpectedly (see the log above); restart the bridge"
                    .to_string(),
            );
            break 'main;
        }
        if Instant::now() >= next_peer_check {
            log_peer_changes(&session, &mut peers);
            next_peer_check = Instant::now() + PEER_CHECK;
        }
        std::thread::sleep(TICK);
    }

    stop.store(true, Ordering::Relaxed);
    drop(zenoh_subscribers);
    for w in workers {
        if w.join().is_err() {
            warn!("a bridge thread panicked");
        }
    }
    if let Err(e) = session.close().wait() {
        warn!("closing the Zenoh session: {e}");
    }
    info!("counters: {}", stats.summary());
    failed.map_or(Ok(()), Err)
}

/// Starts a worker thread with the bridge's signals blocked in it.
fn spawn(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(format!("bridge-{name}"))
        .spawn(move || {
            block_bridge_signals();
            body();
        })
        .map_err(|e| format!("cannot start the {name} thread: {e}"))
}

/// [`block_bridge_signals`] on the calling thread the first time it is
/// called there (a thread-local flag after that).
fn block_bridge_signals_once() {
    thread_local!(static BLOCKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    BLOCKED.with(|b| {
        if !b.get() {
            block_bridge_signals();
            b.set(true);
        }
    });
}

fn block_bridge_signals() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1] {
        set.add(s);
    }
    // Cannot fail with a valid `how`; if it did, a signal could interrupt a
    // wait, which the workers also survive (they treat it as a spurious
    // wake-up or a dropped sample, counted).
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}

/// Logs Zenoh peers and routers that appeared or went away since the last
/// look.
fn log_peer_changes(session: &zenoh::Session, known: &mut BTreeSet<String>) {
    let info = session.info();
    let mut now: BTreeSet<String> = info.peers_zid().wait().map(|z| z.to_string()).collect();
    now.extend(info.routers_zid().wait().map(|z| format!("{z} (router)")));
    for gone in known.difference(&now) {
        info!("Zenoh disconnected from {gone}");
    }
    for new in now.difference(known) {
        info!("Zenoh connected to {new}");
    }
    *known = now;
}
