#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and black-box tests.
# Everything the tests need beyond the Rust toolchain is installed and started from here.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two cores: keep the build from oversubscribing the machine.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== browser test prerequisites"
bash scripts/setup-browser.sh
echo "== SOAP client prerequisites"
bash scripts/setup-soap.sh
echo "== cargo test"
cargo test --locked --no-fail-fast
