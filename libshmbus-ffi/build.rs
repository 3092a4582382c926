//! Build script of the C library: gives `libshmbus.so` its SONAME.
//!
//! The shared library is built as `libshmbus_ffi.so` (the Rust crate
//! `shmbus` owns the name `libshmbus.rlib`) and installed as `libshmbus.so`
//! by `scripts/install-c.sh`. Programs linked against it must record the
//! installed name, not the build name, so the SONAME is set here:
//! `libshmbus.so.MAJOR`, the name the install script links to the file.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libshmbus.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
