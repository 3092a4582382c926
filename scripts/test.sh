#!/usr/bin/env bash
# The whole test suite, as CI runs it (`bash .ci/run` calls this).
# Every step is bounded so the run fits in 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components (rustfmt, clippy)"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "system tools the tests use (valgrind for the C API leak check, iproute2 for the network-namespace bridge test)"
# Tests that need a tool or root are #[ignore]d, saying why, when built
# without it (tests/build.rs); as root on a fresh machine, install it.
need_tool() { # COMMAND PACKAGE WHAT
  command -v "$1" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$2" >/dev/null; }
  else
    echo "$1 ($2) is missing and cannot be installed here: $3 will be reported as ignored"
  fi
}
need_tool valgrind valgrind "the C API leak check"
need_tool ip iproute2 "the network-namespace bridge test"

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets -- -D warnings

step "no import cycles between the modules of a crate (each imports only what is below it)"
python3 scripts/module_cycles.py libshmbus/src libshmbus-ffi/src shmbusd/src shmbus-cli/src \
  shmbus-bridge/src bench/src tests/src

MSRV="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"
step "the stated minimum Rust (rust-version ${MSRV}) builds every crate and target"
if command -v rustup >/dev/null 2>&1; then
  rustup toolchain install "${MSRV}" --profile minimal >/dev/null
  CARGO_TARGET_DIR=target/msrv cargo "+${MSRV}" check --workspace --all-targets --quiet
else
  echo "rustup is not installed: cannot check rust-version ${MSRV} (install rustup to check it)"
fi

step "the public API of shmbus equals docs/public-api.txt (cargo-public-api, pinned nightly)"
if command -v rustup >/dev/null 2>&1; then
  bash scripts/public-api.sh
else
  echo "rustup is not installed: cannot list the public API (install rustup to check it)"
fi

step "build the binaries the end-to-end tests run"
cargo build --workspace --bins

step "unit, property and end-to-end tests"
cargo test --workspace

step "loom model checks of the ring, semaphore and eventcount (preemption bound ${LOOM_MAX_PREEMPTIONS:-2})"
LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" RUSTFLAGS="--cfg loom" \
  CARGO_TARGET_DIR=target/loom timeout 1200 \
  cargo test -p shmbus --release --lib loom

step "all green"
