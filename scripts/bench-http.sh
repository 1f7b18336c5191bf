#!/usr/bin/env bash
# HTTP load figures for BENCHMARKS.md: starts a release keygate on a fresh database and drives it
# with oha. Usage: scripts/bench-http.sh [seconds per run, default 10] [connections, default 32]
# With BENCH_POSTGRES=1 the database is a throwaway, durable PostgreSQL 15 (scripts/pg.sh) instead
# of SQLite. Needs oha on PATH (`cargo install oha --locked`); not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-32}"
command -v oha >/dev/null || { echo "bench-http: oha not found; cargo install oha --locked" >&2; exit 2; }
cargo build --release --locked -q
WORK=$(mktemp -d)
LOG="$WORK/keygate.log"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DB="sqlite://$WORK/keygate.db"
if [[ -n "${BENCH_POSTGRES:-}" ]]; then
  PGDIR="$WORK/pg"
  mkdir -p "$PGDIR" && chmod 777 "$WORK" "$PGDIR"
  ADMIN_URL=$(KEYGATE_PG_DURABLE=1 bash scripts/pg.sh start "$PGDIR")
  psql -q "$ADMIN_URL" -c 'CREATE DATABASE keygate_bench'
  DB="${ADMIN_URL%/*}/keygate_bench"
  export KEYGATE_SECRET="bench-secret-bench-secret-bench-secret-0123456789"
fi
KEYGATE_LOG_LEVEL=warn target/release/keygate serve --listen "127.0.0.1:$PORT" --database "$DB" 2>"$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; [[ -n "${PGDIR:-}" ]] && bash scripts/pg.sh destroy "$PGDIR"; rm -rf "$WORK"' EXIT
KG="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$KG/healthz" >/dev/null && break; sleep 0.1; done
PASS=$(sed -nE 's/.*admin password: ([^ ]+).*/\1/p' "$LOG" | head -1)
ORG=$(curl -sf -u "admin:$PASS" -H 'Content-Type: application/json' -d '{"name":"bench"}' "$KG/v1/orgs")
APIKEY=$(printf '%s' "$ORG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])')
KEY=$(curl -sf -H "X-API-Key: $APIKEY" -H 'Content-Type: application/json' \
  -d '{"name":"bench","scopes":["read"]}' "$KG/v1/keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
USEID=$(curl -sf -H "X-API-Key: $APIKEY" -H 'Content-Type: application/json' \
  -d '{"name":"bench uses"}' "$KG/v1/keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

run() {
  local title="$1"; shift
  echo "== $title"
  oha --no-tui -z "${DURATION}s" -c "$CONNS" "$@" | grep -E 'Requests/sec|Slowest|Average|99.00%|50.00%|\[[0-9]{3}\] [0-9]+ responses'
}
run "GET /healthz" "$KG/healthz"
run "POST /v1/keys/verify (X-API-Key, valid key)" -m POST -H "X-API-Key: $APIKEY" -H 'Content-Type: application/json' \
  -d "{\"key\":\"$KEY\",\"scope\":\"read\"}" "$KG/v1/keys/verify"
run "POST /v1/keys/verify (unknown key)" -m POST -H "X-API-Key: $APIKEY" -H 'Content-Type: application/json' \
  -d '{"key":"kg_nosuchkey"}' "$KG/v1/keys/verify"
run "POST /v1/keys/{id}/use (one write + event per request)" -m POST -H "X-API-Key: $APIKEY" "$KG/v1/keys/$USEID/use"
echo "== server memory after the runs"
grep -E 'VmRSS|VmHWM' "/proc/$PID/status"
