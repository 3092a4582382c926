//! Property test of the `shmbus` command line: the real binary, driven with
//! random argument vectors (valid subcommands and flags mixed with random
//! strings, unicode, bytes that are not UTF-8, huge numbers, empty strings,
//! paths, bad durations, names that try to escape), against a running daemon
//! of the test's own bus and against no daemon at all.
//!
//! Whatever the input, the command must end (by itself, within a generous
//! bound) with an exit status of 0–3, say nothing about a panic or a
//! backtrace, and on failure end its stderr with one `shmbus: ...` line.
//! The only commands allowed to be still running at their bound are those
//! that run until stopped by design (`sub` without `-W`, `stats --watch`,
//! `serve`); the test kills them and checks what they wrote so far.
//!
//! Bounded: 150 cases with a daemon, 60 without (`PROPTEST_CASES` sets both
//! for a longer hunt). No file-system paths that never end (`/dev/zero`) are
//! generated: see `pub_of_an_endless_file_ends`, which pins that bug.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use shmbus_tests::TestBus;

/// How long a command that must end by itself may take: generous, since a
/// debug build on a loaded 2-core machine is slow; never an assertion on
/// speed, only on termination.
const MUST_END_WITHIN: Duration = Duration::from_secs(15);
/// How long a command that may run forever by design is left running
/// before the test stops it and checks what it printed.
const FOREVER_BOUND: Duration = Duration::from_millis(400);

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        // A failure becomes a focused test by hand; no regression files.
        failure_persistence: None,
        // Each case spawns a process: keep shrinking bounded too.
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

// ------------------------------------------------------------ strategies

/// Topic names: valid ones (some made by earlier cases), and every way of
/// breaking the rules.
fn topic() -> BoxedStrategy<OsString> {
    let long_ok = "a".repeat(128);
    let too_long = "b".repeat(129);
    prop_oneof![
        4 => select(vec![
            "t", "t", "a/b", "sensors/imu/0", "x.y", "drop", "block", "new-topic_1",
        ])
        .prop_map(OsString::from),
        3 => select(vec![
            "../x".to_string(), "a/../../b".into(), "/etc/passwd".into(), "a//b".into(),
            "x/".into(), "/".into(), "..".into(), ".".into(), "a:b".into(), "a b".into(),
            "*".into(), "é".into(), "".into(), "-".into(), "--".into(), "-t".into(),
            long_ok, too_long, "a\u{0}b".into(),
        ])
        .prop_map(OsString::from),
        1 => any_token(),
    ]
    .boxed()
}

/// Any string at all: random unicode, random printable ASCII, random bytes
/// (not UTF-8), empty.
fn any_token() -> BoxedStrategy<OsString> {
    prop_oneof![
        any::<String>().prop_map(OsString::from),
        "[ -~]{0,24}".prop_map(OsString::from),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(OsString::from_vec),
        Just(OsString::new()),
    ]
    .boxed()
}

/// Durations: valid ones short enough to keep the run fast, and bad ones.
fn duration() -> BoxedStrategy<OsString> {
    prop_oneof![
        3 => select(vec!["0", "1ms", "50ms", "200ms", "1us", "0.1s", "100ms1us"]),
        2 => select(vec![
            "-1s", "1e99s", "5", "", " ", "s", "1x", "1.5.5s", "..s", "µs",
            "99999999999999999999999h", "18446744073709551615h", "nan", "inf", "+1s",
            "0x10s", "１s",
        ]),
    ]
    .prop_map(OsString::from)
    .boxed()
}

/// Counts (`-c`, `--repeat`, capacities, limits): small valid ones and
/// every kind of bad or huge one. No valid count is large enough to make a
/// command run long (`pub --repeat` with no subscriber never waits).
fn number() -> BoxedStrategy<OsString> {
    prop_oneof![
        3 => select(vec!["1", "2", "3", "16", "1024"]),
        2 => select(vec![
            "0", "-1", "3", "1e9", "0x10", "", "1.5", "16777217", "33554432", "4294967296",
            "18446744073709551616", "99999999999999999999999999999", "١٢", "+2", " 4",
        ]),
    ]
    .prop_map(OsString::from)
    .boxed()
}

/// Repeat counts and `-c`: valid ones stay tiny, since `pub --repeat N
/// --interval D` rightly takes N × D; bad ones as for [`number`].
fn count() -> BoxedStrategy<OsString> {
    prop_oneof![
        3 => select(vec!["1", "2", "3"]).prop_map(OsString::from),
        2 => number(),
    ]
    .prop_filter("valid counts stay tiny", |n| {
        let parsed = n.to_str().and_then(|t| t.trim().parse::<u64>().ok());
        !matches!(parsed, Some(n) if n > 3)
    })
    .boxed()
}

/// Sizes (`--max-msg-size`): valid ones small enough that no topic takes
/// more than a few MiB (a topic reserves all its memory up front, and other
/// tests share `/dev/shm`), and bad ones.
fn size() -> BoxedStrategy<OsString> {
    prop_oneof![
        2 => select(vec!["1", "64", "4KiB", "1k"]),
        2 => select(vec![
            "0", "-1", "65MiB", "4GiB", "99999999999999", "1.5k", "", "KiB", "1XB", "1e3",
        ]),
    ]
    .prop_map(OsString::from)
    .boxed()
}

/// Paths for `-f` and `--runtime-dir`: ordinary, missing, directories,
/// special files that end, and names that try to escape.
fn path() -> BoxedStrategy<OsString> {
    select(vec![
        "/dev/null",
        "/",
        "/proc/self/status",
        "/proc/self/mem",
        "/nonexistent/x",
        "",
        "-",
        "/etc/passwd",
        "../../../../etc/shadow",
        "/proc/x",
        "/dev/shm",
    ])
    .prop_map(OsString::from)
    .boxed()
}

/// Message arguments for `pub` and `call`.
fn message() -> BoxedStrategy<OsString> {
    prop_oneof![
        3 => select(vec!["hello", "", "-", "21.5", "{\"a\":1}"]).prop_map(OsString::from),
        1 => Just(OsString::from("m".repeat(70_000))),
        2 => any_token(),
    ]
    .boxed()
}

fn opt(flag: &'static str, value: BoxedStrategy<OsString>) -> BoxedStrategy<Vec<OsString>> {
    proptest::option::weighted(0.4, value)
        .prop_map(move |v| v.map_or_else(Vec::new, |v| vec![flag.into(), v]))
        .boxed()
}

fn flag(flag: &'static str) -> BoxedStrategy<Vec<OsString>> {
    proptest::bool::weighted(0.3)
        .prop_map(move |on| if on { vec![flag.into()] } else { vec![] })
        .boxed()
}

fn words(w: &[&str]) -> Vec<OsString> {
    w.iter().map(OsString::from).collect()
}

/// Concatenates the pieces of one subcommand's argument list.
fn join(parts: Vec<Vec<OsString>>) -> Vec<OsString> {
    parts.into_iter().flatten().collect()
}

/// One subcommand with its arguments, mostly well formed.
fn subcommand() -> BoxedStrategy<Vec<OsString>> {
    let publish = (
        topic(),
        proptest::collection::vec(message(), 0..3),
        opt("--repeat", count()),
        opt("--interval", duration()),
        opt("-W", duration()),
        opt("-f", path()),
        flag("-v"),
    )
        .prop_map(|(t, msgs, rep, int, w, f, v)| {
            join(vec![words(&["pub"]), vec![t], msgs, rep, int, w, f, v])
        });
    let subscribe = (
        proptest::collection::vec(topic(), 1..3),
        opt("-c", count()),
        // Mostly bounded; sometimes not, which may run until killed.
        proptest::option::weighted(0.85, duration()),
        flag("--from-start"),
        opt(
            "--format",
            select(vec!["text", "json", "hex", "raw", "xml", ""])
                .prop_map(OsString::from)
                .boxed(),
        ),
        flag("-v"),
    )
        .prop_map(|(ts, c, w, fs, fmt, v)| {
            let w = w.map_or_else(Vec::new, |d| vec!["-W".into(), d]);
            join(vec![words(&["sub"]), ts, c, w, fs, fmt, v])
        });
    let topics = (select(vec!["topics", "ls"]), flag("--json"))
        .prop_map(|(name, j)| join(vec![words(&[name]), j]));
    let stats = (
        proptest::option::of(topic()),
        flag("--json"),
        flag("--watch"),
        opt("--interval", duration()),
    )
        .prop_map(|(t, j, w, i)| join(vec![words(&["stats"]), t.into_iter().collect(), j, w, i]));
    let create = (
        topic(),
        opt("--capacity", number()),
        opt("--max-msg-size", size()),
        opt(
            "--policy",
            select(vec!["block", "drop-oldest", "drop", ""])
                .prop_map(OsString::from)
                .boxed(),
        ),
        opt("--max-publishers", number()),
        opt("--max-subscribers", number()),
    )
        .prop_map(|(t, c, m, p, mp, ms)| join(vec![words(&["create"]), vec![t], c, m, p, mp, ms]));
    let remove =
        proptest::collection::vec(topic(), 0..3).prop_map(|ts| join(vec![words(&["rm"]), ts]));
    let call = (
        topic(),
        proptest::option::of(message()),
        opt("-W", duration()),
        opt(
            "--format",
            select(vec!["text", "json", "hex", "raw", "?"])
                .prop_map(OsString::from)
                .boxed(),
        ),
    )
        .prop_map(|(s, m, w, f)| {
            join(vec![
                words(&["call"]),
                vec![s],
                m.into_iter().collect(),
                w,
                f,
            ])
        });
    // `serve` only ever echoes: a random command line must not run
    // arbitrary programs. It serves until stopped.
    let serve = (
        topic(),
        flag("--echo"),
        opt("--workers", number()),
        opt("--queue-capacity", number()),
        opt("--max-request-size", size()),
    )
        .prop_map(|(s, e, wk, q, r)| join(vec![words(&["serve"]), vec![s], e, wk, q, r]));
    let services = flag("--json").prop_map(|j| join(vec![words(&["services"]), j]));
    // A real benchmark run would take seconds of both cores: only bad
    // option values are generated for it.
    let bench = select(vec!["0", "101", "-1", "x", "", "99999999999"])
        .prop_map(|r| join(vec![words(&["bench", "--repeats", r])]));
    let completions = select(vec![
        "bash",
        "zsh",
        "fish",
        "elvish",
        "powershell",
        "sh",
        "",
    ])
    .prop_map(|s| join(vec![words(&["completions", s])]));
    let help = select(vec![
        "--help",
        "-h",
        "--version",
        "-V",
        "help",
        "pub --help",
        "sub -h",
        "nosuch",
    ])
    .prop_map(|s| s.split(' ').map(OsString::from).collect::<Vec<_>>());
    prop_oneof![
        4 => publish,
        4 => subscribe,
        1 => topics,
        2 => stats,
        3 => create,
        1 => remove,
        2 => call,
        1 => serve,
        1 => services,
        1 => bench,
        1 => completions,
        1 => help,
        1 => proptest::collection::vec(any_token(), 0..4),
    ]
    .boxed()
}

/// A whole argument vector (after the test's `--bus`/`--runtime-dir`):
/// sometimes a hostile global option first, sometimes a random token
/// inserted anywhere.
fn argv() -> impl Strategy<Value = Vec<OsString>> {
    let global = prop_oneof![
        6 => Just(vec![]),
        1 => select(vec!["../x", "x/y", "", "é", "a.b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "other"])
            .prop_map(|b| vec!["--bus".into(), b.into()]),
        1 => path().prop_map(|p| vec!["--runtime-dir".into(), p]),
    ];
    (
        global,
        subcommand(),
        proptest::option::weighted(0.2, (any::<prop::sample::Index>(), any_token())),
    )
        .prop_map(|(g, mut sub, junk)| {
            if let Some((at, token)) = junk {
                let at = at.index(sub.len() + 1);
                sub.insert(at, token);
            }
            let mut all = g;
            all.extend(sub);
            all
        })
}

// ------------------------------------------------------------- the check

/// Whether `args` asks for a command that runs until stopped by design.
/// Options count only before a `--` (after it, `-W` is a topic name).
fn may_run_forever(args: &[OsString]) -> bool {
    let options = args.iter().take_while(|a| *a != "--");
    let has = |w: &str| args.iter().any(|a| a == w);
    let bounded = options.clone().any(|a| {
        let a = a.to_string_lossy();
        a.starts_with("-W") || a.starts_with("--timeout")
    });
    let watch = options.clone().any(|a| a == "--watch");
    (has("sub") && !bounded) || (has("stats") && watch) || has("serve")
}

/// What became of one command.
struct Run {
    /// `None` when the test had to kill it at its bound.
    status: Option<ExitStatus>,
    stderr: String,
}

/// Runs `cmd` with stdin closed and its output drained; kills it after
/// `bound` and reports `status: None`.
fn run_bounded(cmd: &mut Command, bound: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A backtrace is what a panic prints with this set; the test looks
        // for both the panic message and any backtrace.
        .env("RUST_BACKTRACE", "1");
    let mut child = cmd.spawn().expect("spawn shmbus");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        // Drained so a chatty command never blocks on a full pipe.
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = out_reader.join();
    Run {
        status,
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Exit codes seen, for the figures printed at the end.
#[derive(Default, Debug)]
struct Tally {
    by_code: [u32; 4],
    stopped_by_test: u32,
}

fn check(bus: &TestBus, args: &[OsString], tally: &Mutex<Tally>) -> Result<(), TestCaseError> {
    // Command::arg cannot carry a NUL byte (no exec can): such a case is
    // outside what a shell could ever pass.
    if args.iter().any(|a| a.as_encoded_bytes().contains(&0)) {
        return Ok(());
    }
    let forever = may_run_forever(args);
    let bound = if forever {
        FOREVER_BOUND
    } else {
        MUST_END_WITHIN
    };
    let run = run_bounded(bus.cli().args(args), bound);
    let shown = format!("{args:?}");
    let shown: String = shown.chars().take(400).collect();
    prop_assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "shmbus {shown} panicked:\n{}",
        run.stderr
    );
    prop_assert!(
        !run.stderr.contains("stack backtrace"),
        "shmbus {shown} printed a backtrace:\n{}",
        run.stderr
    );
    let mut tally = tally.lock().unwrap();
    let Some(status) = run.status else {
        prop_assert!(
            forever,
            "shmbus {shown} did not end within {MUST_END_WITHIN:?}"
        );
        tally.stopped_by_test += 1;
        return Ok(());
    };
    let code = status.code();
    prop_assert!(
        matches!(code, Some(0..=3)),
        "shmbus {shown} ended with {status} (want exit code 0-3); stderr:\n{}",
        run.stderr
    );
    let code = code.unwrap();
    tally.by_code[code as usize] += 1;
    if code == 1 || code == 2 {
        // Errors a user sees: one line naming the program, at the end.
        let last = run.stderr.lines().rev().find(|l| !l.trim().is_empty());
        prop_assert!(
            last.is_some_and(|l| l.starts_with("shmbus: ")),
            "shmbus {shown} failed ({code}) without a `shmbus: ...` error line:\n{}",
            run.stderr
        );
    }
    Ok(())
}

fn fuzz(bus: &TestBus, cases: u32, what: &str) -> Tally {
    let tally = Mutex::new(Tally::default());
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&argv(), |args| check(bus, &args, &tally));
    let tally = tally.into_inner().unwrap();
    eprintln!("cli fuzz ({what}): {tally:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    tally
}

#[test]
fn random_arguments_against_a_running_daemon_end_cleanly() {
    let mut bus = TestBus::new("clifuzz");
    bus.start_daemon();
    // A few topics that the generated commands name, so that valid ones get
    // far (publish, receive, stats) instead of all failing on the name.
    for (t, policy) in [("t", "block"), ("a/b", "block"), ("drop", "drop-oldest")] {
        let out = bus
            .cli()
            .args(["create", t, "--capacity", "16", "--policy", policy])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let tally = fuzz(&bus, 150, "with a daemon");
    let total: u32 = tally.by_code.iter().sum::<u32>() + tally.stopped_by_test;
    if total >= 50 {
        // The generator must reach past the argument parser, not only fail
        // on it: some commands succeed and some are usage errors.
        assert!(tally.by_code[0] > 0, "no command succeeded: {tally:?}");
        assert!(tally.by_code[2] > 0, "no usage error: {tally:?}");
    }
    // The daemon took all of it and still serves.
    let out = bus.cli().args(["pub", "t", "still-here"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        bus.daemon().unwrap().try_wait().unwrap().is_none(),
        "the daemon died"
    );
}

#[test]
fn random_arguments_without_a_daemon_end_cleanly() {
    // No daemon was ever started: the runtime directory does not exist.
    let bus = TestBus::new("clifuzznod");
    let tally = fuzz(&bus, 60, "no daemon");
    let total: u32 = tally.by_code.iter().sum::<u32>() + tally.stopped_by_test;
    if total >= 30 {
        assert!(
            tally.by_code[1] > 0,
            "no runtime error (no daemon): {tally:?}"
        );
    }
    assert!(
        !bus.runtime_dir.exists(),
        "a client created the runtime directory"
    );
}

/// `shmbus pub -f` of a file that never ends reads it forever: the message
/// is already over the limit after `max_msg_size + 1` bytes, yet it goes on
/// counting, and SIGTERM does not stop it (the stop flag is only looked at
/// when a read is interrupted, and reads of /dev/zero never are).
#[test]
fn pub_of_an_endless_file_ends() {
    let mut bus = TestBus::new("clizero");
    bus.start_daemon();
    let run = run_bounded(
        bus.cli()
            .args(["pub", "t", "-f", "/dev/zero", "-W", "100ms"]),
        MUST_END_WITHIN,
    );
    let status = run.status.expect("`pub -f /dev/zero` did not end");
    assert_eq!(status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("larger than"), "{}", run.stderr);
}
