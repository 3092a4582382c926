//! Sets `cfg(as_root)` when the tests are built by root,
//! `cfg(has_valgrind)` when valgrind is installed, `cfg(has_netns)` when
//! root can make network namespaces (`ip netns`, iproute2), and
//! `cfg(shm_fillable)` when `/dev/shm` has less free space than one topic
//! may take (64 GiB), so that a topic can ask for more than there is: the
//! tests that need these run then, and are `#[ignore]`d with the reason
//! otherwise (CI builds and runs them as root, with valgrind and iproute2
//! installed by scripts/test.sh). Never a silent pass.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(as_root)");
    println!("cargo:rustc-check-cfg=cfg(has_valgrind)");
    println!("cargo:rustc-check-cfg=cfg(has_netns)");
    println!("cargo:rustc-check-cfg=cfg(shm_fillable)");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=USER");
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok());
    let root = uid.as_deref().map(str::trim) == Some("0");
    if root {
        println!("cargo:rustc-cfg=as_root");
    }
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success());
    if root && netns {
        println!("cargo:rustc-cfg=has_netns");
    }
    // `df` in bytes: the free space of /dev/shm.
    let free = std::process::Command::new("df")
        .args(["--output=avail", "-B1", "/dev/shm"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.lines().nth(1).and_then(|l| l.trim().parse::<u64>().ok()));
    if free.is_some_and(|f| f < 32 << 30) {
        println!("cargo:rustc-cfg=shm_fillable");
    }
    let valgrind = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if valgrind {
        println!("cargo:rustc-cfg=has_valgrind");
    }
}
