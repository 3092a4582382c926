//! End-to-end tests of the C API (issue 8): the C library is built and
//! installed under a private prefix by `scripts/install-c.sh`, the C and
//! C++ examples and the C argument-checking test are compiled with the
//! system `cc`/`c++` through the installed `shmbus.pc`, and they run
//! against a real `shmbusd`, talking with the real `shmbus` CLI both ways.
//! The argument-checking test also runs statically linked, and under
//! valgrind's leak checker when valgrind is installed.
//!
//! Every test has its own bus and its own install prefix (inside the
//! bus's temporary directory); only the `cargo build` of the library is
//! shared, done once per test process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use shmbus_tests::{run_with_input, signal, wait_exit, TestBus};

/// Bound for one program that should finish quickly (valgrind included).
const LIMIT: Duration = Duration::from_secs(120);

/// The workspace root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The target directory and profile ("debug" or "release") this test was
/// built in: the C library is built in the same ones.
fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is in target/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name")
        .to_string();
    (profile_dir.parent().unwrap().to_path_buf(), profile)
}

/// Builds the C library once per test process, so that it is never
/// stale. `--workspace` resolves dependency features as the README's
/// `cargo build --workspace --bins` does, so only the library itself is
/// compiled (with `-p shmbus-ffi` cargo would rebuild its dependencies
/// with other features).
fn build_library() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (target, profile) = target_and_profile();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo_root())
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--workspace", "--lib"]);
        if profile == "release" {
            cmd.arg("--release");
        }
        let out = run_with_input(&mut cmd, b"", Duration::from_secs(900));
        assert!(
            out.status.success(),
            "cargo build --workspace --lib failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The C library installed under a private prefix, and programs compiled
/// against it.
struct Installed {
    prefix: PathBuf,
    bin: PathBuf,
    /// Whether `pkg-config` is on this machine (else the flags are given
    /// by hand, and a notice says so).
    pkg_config: bool,
}

impl Installed {
    /// Installs the library with `scripts/install-c.sh` under `dir/prefix`.
    fn new(dir: &Path) -> Installed {
        build_library();
        let (target, profile) = target_and_profile();
        let prefix = dir.join("prefix");
        let mut cmd = Command::new("bash");
        cmd.current_dir(repo_root())
            .env("CARGO_TARGET_DIR", &target)
            .arg("scripts/install-c.sh")
            .arg("--no-build")
            .arg("--prefix")
            .arg(&prefix);
        if profile != "release" {
            cmd.arg("--debug");
        }
        let out = run_with_input(&mut cmd, b"", LIMIT);
        assert!(out.status.success(), "install-c.sh failed: {out:?}");
        for f in [
            "lib/libshmbus.so",
            "lib/libshmbus.so.0",
            "lib/libshmbus.a",
            "lib/pkgconfig/shmbus.pc",
            "include/shmbus.h",
            "include/shmbus.hpp",
        ] {
            assert!(prefix.join(f).exists(), "install-c.sh did not install {f}");
        }
        let pkg_config = Command::new("pkg-config")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !pkg_config {
            eprintln!("notice: pkg-config is not installed: compiling with -I/-L flags instead");
        }
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        Installed {
            prefix,
            bin,
            pkg_config,
        }
    }

    /// `pkg-config ARGS shmbus` against the private prefix.
    fn pkg_config(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", self.prefix.join("lib/pkgconfig"))
            .args(args)
            .arg("shmbus")
            .output()
            .expect("run pkg-config");
        assert!(out.status.success(), "pkg-config {args:?} shmbus: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Compile flags for the header (`--cflags`).
    fn cflags(&self) -> Vec<String> {
        if self.pkg_config {
            self.pkg_config(&["--cflags"])
        } else {
            vec![format!("-I{}", self.prefix.join("include").display())]
        }
    }

    /// Link flags: the shared library (`--libs`), or the static archive
    /// with what it needs (the `static_libs` variable of shmbus.pc).
    fn libs(&self, link_static: bool) -> Vec<String> {
        let libdir = self.prefix.join("lib");
        match (link_static, self.pkg_config) {
            (false, true) => {
                let mut l = self.pkg_config(&["--libs"]);
                // Run the programs against this prefix without
                // LD_LIBRARY_PATH.
                l.push(format!("-Wl,-rpath,{}", libdir.display()));
                l
            }
            (false, false) => vec![
                format!("-L{}", libdir.display()),
                "-lshmbus".into(),
                format!("-Wl,-rpath,{}", libdir.display()),
            ],
            (true, pc) => {
                let mut l = vec![libdir.join("libshmbus.a").display().to_string()];
                if pc {
                    l.extend(self.pkg_config(&["--variable=static_libs"]));
                } else {
                    l.extend(
                        [
                            "-lgcc_s",
                            "-lutil",
                            "-lrt",
                            "-lpthread",
                            "-lm",
                            "-ldl",
                            "-lc",
                        ]
                        .map(String::from),
                    );
                }
                l
            }
        }
    }

    /// Compiles `source` (relative to the workspace) into `name` with the
    /// system `cc` (C11) or `c++` (C++17), warnings as errors.
    fn compile(&self, source: &str, name: &str, link_static: bool) -> PathBuf {
        let cpp = source.ends_with(".cpp");
        let exe = self.bin.join(name);
        let mut cmd = Command::new(if cpp { "c++" } else { "cc" });
        cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-pthread", "-g"])
            .args(self.cflags())
            .arg(repo_root().join(source))
            .arg("-o")
            .arg(&exe)
            .args(self.libs(link_static));
        let out = run_with_input(&mut cmd, b"", LIMIT);
        assert!(
            out.status.success(),
            "compiling {source} failed ({cmd:?}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        exe
    }
}

/// A command running a compiled program on `bus` (its name and runtime
/// directory in the environment, as the examples read them).
fn program(bus: &TestBus, exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env("SHMBUS_BUS", &bus.name)
        .env("SHMBUS_RUNTIME_DIR", &bus.runtime_dir);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A child whose stdout and stderr are collected on threads (so it never
/// blocks on a full pipe), for programs that run while the test acts.
struct Running {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        Running {
            child,
            stdout: std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = out.read_to_end(&mut buf);
                buf
            }),
            stderr: std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = err.read_to_end(&mut buf);
                buf
            }),
        }
    }

    /// Waits (bounded) for the exit and returns everything it printed.
    fn finish(mut self) -> Output {
        let status = wait_exit(&mut self.child, LIMIT);
        Output {
            status,
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap(),
        }
    }
}

#[test]
fn c_publisher_to_cli_subscriber() {
    let mut bus = TestBus::new("capipub");
    bus.start_daemon();
    let c = Installed::new(bus.dir());
    let publisher = c.compile("examples/c/publisher.c", "publisher", false);

    let sub = Running::spawn(bus.cli().args(["sub", "sensors/c", "-c", "4", "-W", "60s"]));
    bus.wait_subscribers("sensors/c", 1);

    let copied = run_with_input(
        program(&bus, &publisher).args(["sensors/c", "hello from C", "second"]),
        b"",
        LIMIT,
    );
    assert!(copied.status.success(), "C publisher: {copied:?}");
    let zero_copy = run_with_input(
        program(&bus, &publisher).args(["--zero-copy", "sensors/c", "written in place", ""]),
        b"",
        LIMIT,
    );
    assert!(
        zero_copy.status.success(),
        "C publisher --zero-copy: {zero_copy:?}"
    );

    let out = sub.finish();
    assert!(out.status.success(), "shmbus sub: {out:?}");
    println!(
        "$ publisher sensors/c 'hello from C' second\n{}{}$ publisher --zero-copy sensors/c 'written in place' ''\n{}$ shmbus sub sensors/c -c 4\n{}",
        text(&copied.stderr),
        text(&copied.stdout),
        text(&zero_copy.stdout),
        text(&out.stdout)
    );
    assert_eq!(
        text(&out.stdout),
        "hello from C\nsecond\nwritten in place\n\n"
    );
    assert_eq!(
        text(&copied.stdout),
        "published #0 (12 bytes) on sensors/c\npublished #1 (6 bytes) on sensors/c\n"
    );
    assert!(text(&copied.stderr).contains("1 subscriber(s) attached"));
    assert!(text(&zero_copy.stdout).contains("published #3 (0 bytes)"));
}

#[test]
fn cli_publisher_to_c_subscribers() {
    let mut bus = TestBus::new("capisub");
    bus.start_daemon();
    let c = Installed::new(bus.dir());
    let subscriber = c.compile("examples/c/subscriber.c", "subscriber", false);

    let args = ["--count", "3", "--timeout-ms", "60000", "robot/cmd"];
    let copying = Running::spawn(program(&bus, &subscriber).args(args));
    let in_place = Running::spawn(program(&bus, &subscriber).arg("--in-place").args(args));
    bus.wait_subscribers("robot/cmd", 2);

    let publish = run_with_input(
        bus.cli()
            .args(["pub", "robot/cmd", "forward", "turn left", "stop"]),
        b"",
        LIMIT,
    );
    assert!(publish.status.success(), "shmbus pub: {publish:?}");

    for (name, sub) in [("copying", copying), ("in place", in_place)] {
        let out = sub.finish();
        assert!(out.status.success(), "C subscriber ({name}): {out:?}");
        assert_eq!(text(&out.stdout), "forward\nturn left\nstop\n", "{name}");
    }

    // A late joiner with --from-start gets the history.
    let history = run_with_input(
        program(&bus, &subscriber).args(["--from-start", "--count", "3", "robot/cmd"]),
        b"",
        LIMIT,
    );
    assert!(history.status.success(), "{history:?}");
    assert_eq!(text(&history.stdout), "forward\nturn left\nstop\n");

    // Too few messages before the deadline: exit 3, as `shmbus sub`.
    let short = run_with_input(
        program(&bus, &subscriber).args(["--count", "1", "--timeout-ms", "50", "robot/cmd"]),
        b"",
        LIMIT,
    );
    assert_eq!(short.status.code(), Some(3), "{short:?}");
    assert!(text(&short.stderr).contains("timed out"), "{short:?}");
}

#[test]
fn c_subscriber_ends_on_sigint_and_on_a_removed_topic() {
    let mut bus = TestBus::new("capisig");
    bus.start_daemon();
    let c = Installed::new(bus.dir());
    let subscriber = c.compile("examples/c/subscriber.c", "subscriber", false);

    // Waiting in shmbus_subscriber_recv (no count, no timeout): SIGINT
    // interrupts the wait and the program ends cleanly.
    let waiting = Running::spawn(program(&bus, &subscriber).arg("idle/a"));
    bus.wait_subscribers("idle/a", 1);
    signal(&waiting.child, Signal::SIGINT);
    let out = waiting.finish();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // The topic removed under it: SHMBUS_ERR_CLOSED ends it too.
    let waiting = Running::spawn(program(&bus, &subscriber).arg("idle/b"));
    bus.wait_subscribers("idle/b", 1);
    let rm = run_with_input(bus.cli().args(["rm", "idle/b"]), b"", LIMIT);
    assert!(rm.status.success(), "{rm:?}");
    let out = waiting.finish();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn cpp_example_round_trips_and_the_cli_sees_it() {
    let mut bus = TestBus::new("capicpp");
    bus.start_daemon();
    let c = Installed::new(bus.dir());
    let pubsub = c.compile("examples/cpp/pubsub.cpp", "pubsub", false);

    let sub = Running::spawn(bus.cli().args(["sub", "cpp/t", "-c", "3", "-W", "60s"]));
    bus.wait_subscribers("cpp/t", 1);
    let out = run_with_input(
        program(&bus, &pubsub).args(["cpp/t", "alpha", "beta", "gamma"]),
        b"",
        LIMIT,
    );
    assert!(out.status.success(), "pubsub: {out:?}");
    let stdout = text(&out.stdout);
    for line in [
        "publishing 3 message(s) on cpp/t (max 4096 bytes, 2 subscriber(s))",
        "received #0: alpha",
        "received #1: beta",
        "received #2: gamma",
        // (`shmbus sub -c 3` may have left already: no subscriber count.)
        "topic cpp/t: 3 published, ",
        "as expected, code 11: shmbus_publisher_open: invalid topic name `not a topic`",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    let cli = sub.finish();
    assert!(cli.status.success(), "{cli:?}");
    assert_eq!(text(&cli.stdout), "alpha\nbeta\ngamma\n");
}

#[test]
fn the_example_of_docs_c_api_md_runs_as_shown() {
    let mut bus = TestBus::new("capidoc");
    bus.start_daemon();
    let c = Installed::new(bus.dir());
    let doc = std::fs::read_to_string(repo_root().join("docs/c-api.md")).unwrap();
    let start = doc.find("```c\n").expect("docs/c-api.md has a ```c block") + 5;
    let len = doc[start..].find("```").expect("the ```c block ends");
    let source = bus.dir().join("hello.c");
    std::fs::write(&source, &doc[start..start + len]).unwrap();
    let hello = c.compile(source.to_str().unwrap(), "hello", false);

    let out = run_with_input(&mut program(&bus, &hello), b"", LIMIT);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "#0: hello\n#1: world (in place, valid)\ngreetings: 2 published, 1 subscriber(s), capacity 1024\n"
    );
}

/// Runs the C argument-checking program on a fresh bus, with `wrapper`
/// (e.g. valgrind) in front if given.
fn run_api_errors(tag: &str, link_static: bool, wrapper: &[&str]) -> Output {
    let mut bus = TestBus::new(tag);
    bus.start_daemon();
    let c = Installed::new(bus.dir());
    let exe = c.compile(
        "libshmbus-ffi/tests/c/api_errors.c",
        "api_errors",
        link_static,
    );
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    cmd.env("SHMBUS_BUS", &bus.name)
        .env("SHMBUS_RUNTIME_DIR", &bus.runtime_dir);
    let out = run_with_input(&mut cmd, b"", LIMIT);
    print!("{}", text(&out.stdout));
    eprint!("{}", text(&out.stderr));
    out
}

#[test]
fn every_c_function_checks_its_arguments_statically_linked() {
    let out = run_api_errors("capierr", true, &[]);
    assert!(out.status.success(), "api_errors failed: {out:?}");
    assert!(
        text(&out.stdout).contains("checks passed"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
#[cfg_attr(
    not(has_valgrind),
    ignore = "valgrind is not installed (scripts/test.sh installs it when run as root)"
)]
fn every_c_function_checks_its_arguments_under_valgrind() {
    let out = run_api_errors(
        "capivg",
        false,
        &[
            "valgrind",
            "--leak-check=full",
            "--error-exitcode=1",
            "--errors-for-leak-kinds=definite,indirect,possible",
        ],
    );
    assert!(
        out.status.success(),
        "api_errors under valgrind failed (a failed check, a memory error or a leak): {out:?}"
    );
    assert!(text(&out.stdout).contains("checks passed"));
    assert!(
        text(&out.stderr).contains("ERROR SUMMARY: 0 errors"),
        "{}",
        text(&out.stderr)
    );
}
