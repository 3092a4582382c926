//! The checked-in C header, `include/shmbus.h`, must be exactly what
//! cbindgen generates from this crate's source: this test regenerates it
//! and fails when the two differ. `SHMBUS_BLESS=1` rewrites the header
//! instead (then review and commit it).

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .expect("libshmbus-ffi/cbindgen.toml is readable and valid");
    // Parsing the source files directly (following `mod` items from
    // lib.rs) needs no `cargo metadata` call, so the test works offline and
    // while cargo holds the build directory.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn checked_in_header_is_up_to_date() {
    let header: &Path = &crate_dir().join("../include/shmbus.h");
    let fresh = generate();
    if std::env::var_os("SHMBUS_BLESS").is_some() {
        std::fs::write(header, &fresh).expect("write include/shmbus.h");
        return;
    }
    let current = std::fs::read_to_string(header).unwrap_or_default();
    if current != fresh {
        let first_difference = current
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(fresh.lines().count()));
        panic!(
            "include/shmbus.h is stale (first difference at line {}): regenerate it with \
             `SHMBUS_BLESS=1 cargo test -p shmbus-ffi --test header` and commit it",
            first_difference + 1
        );
    }
}

/// Every function the library exports is declared in the header, and the
/// header declares nothing the source does not define (a guard against a
/// cbindgen setting silently dropping items).
#[test]
fn header_declares_every_exported_function() {
    let header = generate();
    let mut exported = Vec::new();
    for entry in std::fs::read_dir(crate_dir().join("src")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() == "#[no_mangle]" {
                let sig = lines.next().unwrap_or_default();
                let name = sig
                    .split("fn ")
                    .nth(1)
                    .and_then(|s| s.split('(').next())
                    .unwrap_or_else(|| panic!("no function after #[no_mangle]: {sig}"));
                exported.push(name.to_string());
            }
        }
    }
    assert!(exported.len() > 30, "found only {exported:?}");
    for name in &exported {
        assert!(
            header.contains(&format!(" {name}(")) || header.contains(&format!("*{name}(")),
            "{name} is exported but not declared in the header"
        );
    }
}
