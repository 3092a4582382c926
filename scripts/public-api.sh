#!/usr/bin/env bash
# The public API of the `shmbus` crate, checked against the listing kept in
# docs/public-api.txt, so that every change to it shows in review.
#
#   scripts/public-api.sh           check (exit 1 and a diff when it differs)
#   scripts/public-api.sh --bless   rewrite docs/public-api.txt
#
# It uses cargo-public-api (the field's standard: it reads rustdoc's JSON,
# which needs a nightly toolchain). Both are pinned, so the listing's form
# does not move under us: a newer pair may render the same API differently.
set -euo pipefail
cd "$(dirname "$0")/.."

NIGHTLY=nightly-2026-05-19
TOOL_VERSION=0.52.0
LISTING=docs/public-api.txt

rustup toolchain install "${NIGHTLY}" --profile minimal >/dev/null 2>&1
if [ "$(cargo public-api --version 2>/dev/null)" != "cargo-public-api ${TOOL_VERSION}" ]; then
  cargo install cargo-public-api --version "${TOOL_VERSION}" --locked --quiet
fi
current="$(mktemp)"
trap 'rm -f "$current"' EXIT
# `cargo +TOOLCHAIN public-api` builds the rustdoc JSON with that toolchain.
cargo "+${NIGHTLY}" public-api -p shmbus -sss >"$current"
if [ "${1:-}" = "--bless" ]; then
  cp "$current" "$LISTING"
  echo "wrote $LISTING ($(wc -l <"$LISTING") lines)"
elif ! diff -u "$LISTING" "$current"; then
  echo "the public API of shmbus changed (diff above): if that is intended, run scripts/public-api.sh --bless and commit $LISTING" >&2
  exit 1
else
  echo "public API unchanged ($(wc -l <"$LISTING") lines in $LISTING)"
fi
