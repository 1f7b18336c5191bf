#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property and black-box tests, the store
# conformance suite on SQLite and PostgreSQL, and the multi-node PostgreSQL tests.
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
echo "== PostgreSQL for the conformance and multi-node tests"
# A throwaway server (scripts/pg.sh), unless KEYGATE_TEST_POSTGRES_URL already names one.
if [[ -z "${KEYGATE_TEST_POSTGRES_URL:-}" ]]; then
    pgdir="$(mktemp -d /tmp/keygate-pg.XXXXXX)"
    trap 'bash scripts/pg.sh destroy "$pgdir" || true' EXIT
    KEYGATE_TEST_POSTGRES_URL="$(bash scripts/pg.sh start "$pgdir")"
    export KEYGATE_TEST_POSTGRES_URL
fi
echo "PostgreSQL at $KEYGATE_TEST_POSTGRES_URL"
echo "== cargo test"
cargo test --locked --no-fail-fast
echo "== schemathesis: /openapi.json checked against the server"
bash scripts/schemathesis.sh
