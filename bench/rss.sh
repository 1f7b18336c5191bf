#!/usr/bin/env bash
# bench/rss.sh: keygate's resident memory over repeated wrk runs against one route, to see
# whether memory grows with the number of requests served (it should not, past its caches).
#
#   bench/rss.sh
#
# It starts a release keygate on a fresh SQLite database with the bench routes on, then runs wrk
# RUNS times against the route and prints the requests served so far and keygate's RSS (VmRSS)
# after each run. Nothing scrapes /metrics meanwhile (as on a server without Prometheus).
#
# Settings (environment):
#   ROUTE=middleware  bench route: `middleware` (POST /_bench/middleware, inside keygate's
#                     middleware: access log, metrics, timeouts) or `bare` (outside it)
#   RUNS=6  DURATION=5  CONNS=64  THREADS=2
#   KEYGATE_BIN=target/release/keygate  (built with cargo build --release when it is this default)
set -euo pipefail
cd "$(dirname "$0")/.."
die() {
    echo "rss: $*" >&2
    exit 1
}
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROUTE="${ROUTE:-middleware}"
RUNS="${RUNS:-6}"
DURATION="${DURATION:-5}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
BIN="${KEYGATE_BIN:-target/release/keygate}"
[[ "$ROUTE" == bare || "$ROUTE" == middleware ]] || die "ROUTE is bare or middleware"
command -v wrk >/dev/null || die "wrk is missing (bench/run.sh installs it)"
[[ -n "${KEYGATE_BIN:-}" ]] || cargo build --release --locked --bin keygate
WORK=$(mktemp -d)
PORT=$(free_port)
KEYGATE_SECRET=bench-rss-secret-0123456789abcdef0123 KEYGATE_BENCH_ROUTES=true KEYGATE_LOG_LEVEL=warn \
    "$BIN" serve --listen "127.0.0.1:$PORT" --database "sqlite://$WORK/keygate.db" 2>"$WORK/keygate.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_up "$PID" 30 "http://127.0.0.1:$PORT/healthz"
rss() { awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$PID/status"; }
echo "rss: $ROUTE, $RUNS runs of ${DURATION} s, $CONNS connections; RSS at start $(rss) MiB"
total=0
for ((i = 1; i <= RUNS; i++)); do
    n=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s bench/post.lua "http://127.0.0.1:$PORT/_bench/$ROUTE" -- \
        '{"key":"kgb_1.benchsecret1","scope":"read"}' | awk '/requests in/ {print $1}')
    total=$((total + n))
    echo "run $i: $n requests ($total in all), RSS $(rss) MiB"
done
