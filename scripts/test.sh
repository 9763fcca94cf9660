#!/usr/bin/env bash
# Runs every check and test of the workspace, from a fresh machine.
#
# Usage: bash scripts/test.sh
#
# It installs and starts whatever the tests need (nothing beyond the Rust toolchain
# yet; Redis and Memcached servers join here with their storages), then runs, in order:
# formatting, clippy with warnings denied, documentation with warnings denied, and
# every test (unit, integration, conformance, doctests, examples).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

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
else
  echo "warning: clippy is not installed and cannot be added; skipping lints" >&2
fi

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked --quiet

step "cargo test"
cargo test --workspace --all-features --locked
cargo test -p limiter --no-default-features --lib --locked

step "examples"
cargo run --quiet --locked -p example-quickstart >/dev/null
cargo run --quiet --locked -p example-custom-strategy >/dev/null
echo "examples ran"
