//! Sets `cfg(as_root)` when the tests are built by root, and
//! `cfg(has_valgrind)` when valgrind is installed: the tests that need a
//! second real user (`useradd`, `setpriv`) or valgrind run then, and are
//! `#[ignore]`d with the reason otherwise (CI builds and runs them as root,
//! with valgrind installed by scripts/test.sh). Never a silent pass.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(as_root)");
    println!("cargo:rustc-check-cfg=cfg(has_valgrind)");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=USER");
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok());
    if uid.as_deref().map(str::trim) == Some("0") {
        println!("cargo:rustc-cfg=as_root");
    }
    let valgrind = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if valgrind {
        println!("cargo:rustc-cfg=has_valgrind");
    }
}
