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

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets -- -D warnings

step "build the binaries the end-to-end tests run"
cargo build --workspace --bins

step "unit, property and end-to-end tests"
cargo test --workspace

step "loom model checks of the ring, semaphore and eventcount (preemption bound ${LOOM_MAX_PREEMPTIONS:-2})"
LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" RUSTFLAGS="--cfg loom" \
  CARGO_TARGET_DIR=target/loom timeout 1200 \
  cargo test -p shmbus --release --lib loom

step "all green"
