//! Sets `cfg(as_root)` when the tests are built by root: the tests that
//! need a second real user (`useradd`) run then, and are `#[ignore]`d with
//! the reason otherwise (CI builds and runs them as root).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(as_root)");
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
}
