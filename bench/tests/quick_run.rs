//! End-to-end smoke run of the benchmark: the built `shmbus-bench` binary in
//! `--quick --json` mode, as a user would run it. Checks that the JSON
//! parses, that every case the issues ask for produced its figures, that
//! every SPEC §9 target (and each services target) was measured (met or not: no duration is asserted,
//! the numbers belong in docs/performance.md), and that the run left nothing
//! in /dev/shm.

use std::process::Command;

use serde_json::Value;

/// Every case of a full run, by id: floors, kernel baselines, shmbus
/// latency per wait strategy, throughput per path, fan-out per width,
/// services per wait strategy and their Unix-socket baseline.
fn expected_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "floor/spin",
        "floor/spin-64",
        "floor/futex",
        "floor/memcpy/1048576",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for size in [64, 4096, 1048576] {
        ids.push(format!("floor/ring/{size}"));
    }
    for kind in ["pipe", "unix"] {
        ids.push(format!("{kind}/latency/64"));
        for size in [64, 4096, 1048576] {
            ids.push(format!("{kind}/throughput/{size}"));
        }
    }
    ids.push("mq/latency/64".into());
    for size in [64, 4096] {
        ids.push(format!("mq/throughput/{size}"));
    }
    for size in [64, 4096] {
        for wait in ["spin", "spin-then-park", "park"] {
            ids.push(format!("shmbus/latency/{wait}/{size}"));
        }
    }
    for size in [64, 4096, 1048576] {
        for path in ["copy", "zero-copy"] {
            ids.push(format!("shmbus/throughput/{path}/{size}"));
        }
    }
    for n in [1, 2, 4, 8, 16] {
        ids.push(format!("shmbus/fanout/{n}"));
        ids.push(format!("shmbus/fanout-park/{n}"));
    }
    for kind in ["spin", "spin-then-park", "park", "unix"] {
        ids.push(format!("services/{kind}/64"));
    }
    ids
}

/// Names under /dev/shm that this benchmark process (pid `pid`) would create.
fn leftovers(pid: u32) -> Vec<String> {
    let region = format!("shmbus-bench-{pid}-");
    let bus = format!(".bench-{pid}.");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(&region) || n.contains(&bus))
                .collect()
        })
        .unwrap_or_default()
}

fn positive(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0)
}

#[test]
fn quick_json_run_has_every_case_and_target() {
    let child = Command::new(env!("CARGO_BIN_EXE_shmbus-bench"))
        .args(["--quick", "--json", "--no-progress"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start shmbus-bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for shmbus-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shmbus-bench --quick failed: {stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is JSON");

    assert_eq!(report["quick"], Value::Bool(true));
    assert!(report["machine"]["cpus"].as_u64().is_some_and(|n| n >= 1));
    let rows = report["rows"].as_array().expect("rows array");
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id);
    for id in expected_ids() {
        let row = by_id(&id).unwrap_or_else(|| panic!("case {id} missing from the report"));
        let measured = if id.starts_with("services/") {
            let l = &row["round_trip"];
            ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"]
                .iter()
                .all(|k| positive(&l[*k]))
                && l["samples"].as_u64().is_some_and(|n| n > 0)
                && positive(&row["calls_per_sec"])
        } else if id.contains("/latency/") || id.starts_with("floor/spin") || id == "floor/futex" {
            let l = &row["latency"];
            ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"]
                .iter()
                .all(|k| positive(&l[*k]))
                && l["samples"].as_u64().is_some_and(|n| n > 0)
        } else if id.starts_with("shmbus/fanout") {
            positive(&row["publish_ns"])
                && positive(&row["msgs_per_sec"])
                && positive(&row["slowest_msgs_per_sec"])
        } else if id.starts_with("floor/memcpy/") {
            positive(&row["mib_per_sec"])
        } else {
            positive(&row["msgs_per_sec"]) && positive(&row["mib_per_sec"])
        };
        assert!(measured, "case {id} has no figures: {row}");
    }
    // The shmbus rows carry their ratios to the floors and baselines.
    let versus = |id: &str| by_id(id).map_or(0, |r| r["versus"].as_array().map_or(0, Vec::len));
    // Spin 64 B latency: spin floor, 64 B spin floor, unix socket.
    assert_eq!(versus("shmbus/latency/spin/64"), 3);
    assert!(versus("shmbus/throughput/copy/1048576") >= 2);
    assert!(versus("shmbus/fanout/16") >= 1);
    // Spin service: 2x spin floor, unix round trip, unix calls/s.
    assert_eq!(versus("services/spin/64"), 3);

    let targets = report["targets"].as_array().expect("targets array");
    let keys: Vec<&str> = targets.iter().filter_map(|t| t["key"].as_str()).collect();
    for key in [
        "spin-latency",
        "park-latency",
        "small-throughput",
        "large-copy",
        "zero-copy",
        "fanout-publish",
        "fanout-publish-parked",
        "service-spin-latency",
        "service-calls",
    ] {
        let t = targets
            .iter()
            .find(|t| t["key"] == key)
            .unwrap_or_else(|| panic!("target {key} missing; have {keys:?}"));
        assert!(positive(&t["ratio"]), "target {key} was not measured: {t}");
        assert!(t["met"].is_boolean(), "target {key} has no verdict: {t}");
    }

    let left = leftovers(pid);
    assert!(
        left.is_empty(),
        "the run left shared memory behind: {left:?}"
    );
}
