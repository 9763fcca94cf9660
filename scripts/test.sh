#!/usr/bin/env bash
# Runs every check and test of the workspace, from a fresh machine.
#
# Usage: bash scripts/test.sh
#
# It installs and starts whatever the tests need (each scripts/services/*.sh starts
# one kind of server on loopback ports and exports where it listens; all are stopped
# when this script exits), then runs, in order: formatting, clippy with warnings
# denied, documentation with warnings denied, every test (unit, integration,
# conformance, doctests), the core's tests again in an optimised build with overflow
# checks on, and the examples that run to completion (the quickstart and the other
# servers are driven on loopback ports by their tests, under "cargo test"), and each
# feature of the facade crate alone and with the defaults (cargo-hack, installed when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

have_component() { cargo "$1" --version >/dev/null 2>&1 || rustup component add "$2" >/dev/null 2>&1; }

if have_component fmt rustfmt; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
else
  echo "warning: rustfmt is not installed and cannot be added; skipping the format check" >&2
fi

if have_component clippy clippy; then
  step "cargo clippy (warnings denied)"
  cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
  cargo clippy -p limiter --no-default-features --all-targets --locked -- -D warnings
  cargo clippy -p limiter-http --no-default-features --all-targets --locked -- -D warnings
  cargo clippy -p limiter-http --no-default-features --features tower --all-targets --locked -- -D warnings
  cargo clippy -p limiter-http --no-default-features --features reload --all-targets --locked -- -D warnings
  cargo clippy -p limiter-http --no-default-features --features config --all-targets --locked -- -D warnings
  cargo clippy -p limiter --no-default-features --features config --all-targets --locked -- -D warnings
  cargo clippy -p limiter-cli --no-default-features --all-targets --locked -- -D warnings
  cargo clippy -p limiter-http --no-default-features --features actix-web --all-targets --locked -- -D warnings
  cargo clippy -p limiter-http --no-default-features --features metrics --all-targets --locked -- -D warnings
  cargo clippy -p limiter --no-default-features --features metrics --all-targets --locked -- -D warnings
else
  echo "warning: clippy is not installed and cannot be added; skipping lints" >&2
fi

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked --quiet

for service in scripts/services/*.sh; do
  [ -e "$service" ] || continue
  step "start $(basename "$service" .sh)"
  source "$service"
done

step "cargo test"
cargo test --workspace --all-features --locked
cargo test -p limiter-http --no-default-features --features metrics --lib --locked

# Every facade feature alone, then each with the defaults: each builds and passes its
# tests (unit, integration and doctests) without the others. limiter-http's features
# alone are checked only: its tests need axum, and clippy lints its combinations above.
step "each feature alone and with the defaults (cargo hack)"
if ! cargo hack --version >/dev/null 2>&1; then
  cargo install cargo-hack --locked
fi
cargo hack test -p limiter --each-feature --exclude-all-features --locked
# (The defaults are memory and tokio.)
cargo hack test -p limiter --each-feature --features memory,tokio \
  --exclude-features default,full --exclude-no-default-features --exclude-all-features --locked
cargo hack check -p limiter-http --each-feature --exclude-all-features --locked

step "core tests, optimised, overflow checks on"
cargo test -p limiter-core --profile release-checked --locked

step "examples"
cargo run --quiet --locked -p example-console >/dev/null
cargo run --quiet --locked -p example-custom-strategy >/dev/null
echo "examples ran"
