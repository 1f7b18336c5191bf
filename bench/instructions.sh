#!/usr/bin/env bash
# bench/instructions.sh: keygate's instructions per request, counted by valgrind's callgrind.
#
#   bench/instructions.sh [--label NAME]
#
# A count of instructions does not move with the machine's load, as req/s and CPU time do (by
# ±20% on a shared 2-core machine): it shows a change of a few percent in one run, where wrk needs
# alternating rounds. It measures user-space instructions only (not the kernel's TCP work, not
# cache misses), so it complements bench/run.sh rather than replacing it.
#
# It builds release (keygate and examples/ceiling.rs) with line tables, starts keygate under
# callgrind with instrumentation off, sets up over HTTP as bench/run.sh does (an organization,
# a SuperOffice ticket, temporary keys) plus native keys, and for each kind sends warm-up requests,
# then counts exactly N requests: `bare` (POST /_bench/bare, outside the middleware), `middleware`
# (POST /_bench/middleware), `verify` (POST /v1/keys/verify by X-API-Key, a cached key),
# `ctk` (CheckTemporaryKey by SOTicket), `tedee` (GET .../personalaccesskey by PersonalKey, when
# asked for); then the ceiling, examples/ceiling.rs in its own process.
# Each line shows the instructions per request, those of the secret digest (HMAC-SHA-256:
# valgrind's CPU lacks the SHA extensions, so there it runs in software, many times its real
# cost) and the rest. The callgrind files stay in target/bench/instructions-<label>/ for
# callgrind_annotate (`--inclusive=yes`, or `--tree=caller`).
#
# Settings (environment):
#   N=3000            requests counted per kind (after 1,000 unmeasured)
#   CONNS=8           keep-alive connections
#   KINDS="bare middleware verify ctk"  (also: tedee, GET .../personalaccesskey by PersonalKey)
#   TARGET_DIR=target/prof  cargo's target directory (built with line tables)
# It needs valgrind, python3 and curl (valgrind installed with apt-get when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "instructions: $*" >&2
    exit 1
}
LABEL=run
# shellcheck source=bench/lib.sh
. bench/lib.sh
parse_label "$@"
N="${N:-3000}"
CONNS="${CONNS:-8}"
KINDS="${KINDS:-bare middleware verify ctk}"
TARGET_DIR="${TARGET_DIR:-target/prof}"
for k in $KINDS; do
    [[ " bare middleware verify ctk tedee " == *" $k "* ]] || die "unknown kind $k in KINDS"
done
if ! command -v valgrind >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "valgrind is missing (apt-get install valgrind)"
    apt-get install -y -qq valgrind >/dev/null
fi
command -v curl >/dev/null && command -v python3 >/dev/null || die "needs curl and python3"

echo "instructions: building release with line tables into $TARGET_DIR" >&2
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --locked --target-dir "$TARGET_DIR" \
    --bin keygate --example ceiling

OUT="target/bench/instructions-$LABEL"
rm -rf "$OUT"
mkdir -p "$OUT"
WORK=$(mktemp -d)
H="python3 bench/helper.py"
VPID=
cleanup() {
    [[ -z "$VPID" ]] || kill "$VPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# grind NAME CMD...: start CMD under callgrind (instrumentation off) in the background.
grind() {
    local name="$1"
    shift
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$name.%p.out" "$@" \
        2>"$WORK/$name.log" &
    VPID=$!
}
# count URL KIND SETUP: warm up, then count N requests into one dump named KIND.
count() {
    $H drive "$1" 1000 "$CONNS" "$2" "$3"
    callgrind_control -i on "$VPID" >/dev/null 2>&1
    callgrind_control -z "$VPID" >/dev/null 2>&1
    $H drive "$1" "$N" "$CONNS" "$2" "$3"
    callgrind_control -d "$2" "$VPID" >/dev/null 2>&1
    callgrind_control -i off "$VPID" >/dev/null 2>&1
}
stop() {
    kill "$VPID" 2>/dev/null || true
    wait "$VPID" 2>/dev/null || true
    VPID=
}

PORT=$(free_port)
CPORT=$(free_port)
KG="http://127.0.0.1:$PORT"
export KEYGATE_BENCH_ROUTES=true KEYGATE_LOG_LEVEL=warn
export KEYGATE_SECRET="instructions-bench-secret-$(date +%s)-0123456789abcdef"
grind keygate "$TARGET_DIR/release/keygate" serve --listen "127.0.0.1:$PORT" --database "sqlite://$WORK/keygate.db"
wait_up "$VPID" 120 "$KG/healthz"  # valgrind starts slowly
PASS=$(sed -nE 's/.*admin password: ([^ ]+).*/\1/p' "$WORK/keygate.log" | head -1)
[[ -n "$PASS" ]] || die "no admin password in keygate's log"
$H setup "$KG" "$PASS" "$WORK/setup.json" "$WORK/temp-keys.txt" 100
$H native "$KG" "$WORK/setup.json" "$WORK/native-keys.txt" 100
for kind in $KINDS; do
    count "$KG" "$kind" "$WORK/setup.json"
done
stop
grind ceiling "$TARGET_DIR/release/examples/ceiling" "127.0.0.1:$CPORT"
wait_up "$VPID" 120 "http://127.0.0.1:$CPORT/" -H 'Content-Type: application/json' -d '{"key":"x"}'
count "http://127.0.0.1:$CPORT" ceiling -
stop

# The dumps: <name>.<pid>.out.<n>, each naming its kind in its trigger line.
echo "instructions per request ($N requests, $CONNS connections; git $(git rev-parse --short HEAD)$(
    git diff --quiet HEAD -- src examples Cargo.toml Cargo.lock || echo ' with uncommitted changes'))"
printf '%-12s %10s %10s %10s\n' kind total digest rest
for f in "$OUT"/*.out.*; do
    kind=$(sed -nE 's/^desc: Trigger: .*dump (.*)$/\1/p' "$f" | head -1)
    total=$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$f" | head -1)
    digest=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
        awk '/keygate::core::secret::SecretHasher::digest( |$)/ { gsub(",", "", $1); if ($1 + 0 > m) m = $1 + 0 }
             END { print m + 0 }')
    printf '%-12s %10d %10d %10d\n' "$kind" $((total / N)) $((digest / N)) $(((total - digest) / N))
done
echo "callgrind files: $OUT/" >&2
