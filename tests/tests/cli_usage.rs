//! End-to-end tests of what `shmbus` says when it cannot do what was asked:
//! no daemon (the exact SPEC §7 text, exit 1), usage errors (one line, exit
//! 2), plus the self-describing parts: `--help` with an example on every
//! subcommand, shell completions, and a smoke run of `shmbus bench`.

use std::process::Command;
use std::time::Duration;

use shmbus_tests::{bin, run_with_input, stderr, TestBus};

/// Bound for one CLI command (never asserted as a time).
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn no_daemon_says_how_to_start_one_and_exits_1() {
    // No daemon started on this bus.
    let bus = TestBus::new("nodaemon");
    let want = format!(
        "shmbus: no shmbusd for bus `{b}` (socket {}/{b}.sock): start it with `shmbusd --bus {b}`\n",
        bus.runtime_dir.display(),
        b = bus.name
    );
    for args in [
        &["pub", "t", "x"][..],
        &["sub", "t"],
        &["topics"],
        &["ls", "--json"],
        &["stats"],
        &["create", "t"],
        &["rm", "t"],
    ] {
        let out = bus.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_eq!(stderr(&out), want, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    // Usage is checked before anything connects: no daemon needed.
    let bus = TestBus::new("usage");
    for (args, says) in [
        (&["pub"][..], "<TOPIC>"),
        (&["sub"], "<TOPIC|PATTERN>"),
        (&["sub", "t", "--bogus"], "'--bogus'"),
        (&["sub", "t", "-W", "5"], "has no unit"),
        (&["sub", "t", "-W", "5x"], "unknown unit"),
        (&["sub", "t", "-c", "0"], "must be at least 1"),
        (
            &["sub", "t", "--format", "xml"],
            "possible values: text, json, hex, raw",
        ),
        (&["pub", "t", "a", "-"], "cannot be mixed"),
        (&["pub", "t", "a", "-f", "file"], "cannot be used with"),
        (&["pub", "t", "--repeat", "0"], "must be at least 1"),
        (&["pub", "t", "--interval", "soon"], "not a duration"),
        (&["stats", "--interval", "1"], "has no unit"),
        (
            &["completions", "powershell"],
            "possible values: bash, zsh, fish",
        ),
        (&["nosuch"], "unrecognized subcommand"),
        (&["pub", "a//b", "x"], "must not contain an empty segment"),
        (&["create", "t", "--capacity", "3"], "power of two"),
    ] {
        let out = bus.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("shmbus: ") && err.ends_with('\n') && err.lines().count() == 1,
            "{args:?}: not one line: {err}"
        );
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = run_with_input(
        Command::new(bin("shmbus")).args(["--bus", "no.dots", "topics"]),
        b"",
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        "shmbus: invalid bus name `no.dots`: may only contain A-Z a-z 0-9 _ -\n"
    );
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    let bus = TestBus::new("help");
    let out = bus.run(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let top = String::from_utf8_lossy(&out.stdout).into_owned();
    for sub in [
        "pub",
        "sub",
        "topics",
        "stats",
        "create",
        "rm",
        "bench",
        "completions",
    ] {
        assert!(
            top.contains(&format!("  {sub} ")),
            "{sub} missing from:\n{top}"
        );
        let out = bus.run(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}: {out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Examples:"), "{sub}:\n{help}");
        assert!(help.contains(&format!("  shmbus {sub}")), "{sub}:\n{help}");
    }
}

#[test]
fn completions_are_scripts_for_each_shell() {
    let bus = TestBus::new("complete");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef shmbus"),
        ("fish", "complete -c shmbus"),
    ] {
        let out = bus.run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}:\n{script}");
        for word in ["sub", "from-start", "drop-oldest"] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    // The bash script is valid bash.
    let out = bus.run(&["completions", "bash"]);
    let path = bus.dir().join("shmbus.bash");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(check.status.success(), "bash -n: {check:?}");
}

#[test]
fn bench_runs_and_reports_json() {
    // The quickest group in its smoke form: this checks that the subcommand
    // runs the benchmark (children re-executed from the `shmbus` binary) and
    // reports, not how fast anything is.
    let bus = TestBus::new("bench");
    let out = bus.run(&[
        "bench",
        "--quick",
        "--only",
        "throughput",
        "--json",
        "--no-progress",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench JSON");
    let rows = report["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{report}");
    for row in rows {
        assert_eq!(row["group"], "throughput", "{row}");
        assert!(
            row["msgs_per_sec"].as_f64().is_some_and(|r| r > 0.0),
            "{row}"
        );
        assert!(
            row["mib_per_sec"].as_f64().is_some_and(|r| r > 0.0),
            "{row}"
        );
    }
}
