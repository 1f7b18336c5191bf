#!/usr/bin/env bash
# bench/run.sh: keygate's HTTP load figures, written into BENCHMARKS.md (issue 16).
#
#   bench/run.sh [--label before|after|NAME]
#
# It builds release (keygate and examples/ceiling.rs), starts keygate on a random loopback port
# with a fresh database, a fixed secret and the bench routes on (KEYGATE_BENCH_ROUTES), makes an
# organization with its API key, seeds keys straight into the database, and drives each row of
# issue 16's table with wrk for DURATION seconds. Right before each row it measures the three
# ceilings: (a) the bare handler of examples/ceiling.rs in a process of its own, (b) the same
# handler in keygate's process outside its middleware (POST /_bench/bare), (c) inside it
# (POST /_bench/middleware); a row whose script makes each request anew has its ceilings sent
# those same requests. Any answer that is not 2xx, or any socket error, fails the run.
# It rewrites only its own section of BENCHMARKS.md (between the bench/run.sh markers); with
# --label after, the stored "before" run stays next to the new one. wrk's raw outputs stay in
# target/bench/<database>-<label>/.
#
# Settings (environment):
#   DURATION=10        seconds per wrk run
#   CONNS=64           connections
#   THREADS=$(nproc)   wrk threads
#   SIZES="1000 1000000"  native keys seeded for the verify rows (one row per size)
#   BENCH_LABEL=before the label, as --label
#   BENCH_POSTGRES=1   a throwaway durable PostgreSQL 15 (scripts/pg.sh) instead of SQLite
#   BENCH_PG_CACHE=1   with BENCH_POSTGRES=1: keygate runs with postgres_credential_cache on (its
#                      own section, "postgres-cache"; the seeded rows reach it by the triggers too)
#   BENCH_LOG_LEVEL=warn  keygate's log level
#   BENCHMARKS=BENCHMARKS.md  the file to write
#   TEMP_KEYS=1000, TEDEE_KEYS=6500, UNKNOWN_SHARE=0.1
#   ROWS="verify superoffice tedee use create"  the rows to drive (a scratch run: set BENCHMARKS too)
#   ROUNDS=1           each row (with its three ceilings right before it) run this many times in a
#                      row; the report shows the round whose req/s ratio to ceiling (a) is the median,
#                      and every round's ratios (a shared machine moves single rounds by ±20%)
#   PROFILE=1          perf record (cpu-clock, dwarf call graphs) keygate during each row:
#                      RAW/<row>.perf.txt, functions by inclusive share, and the row's flamegraph,
#                      RAW/<row>.svg and as text RAW/<row>.tree.txt, from its stacks RAW/<row>.folded
#                      (inferno; installed into target/tools with cargo when not on PATH). Build
#                      with debug line tables for useful stacks:
#                      CARGO_PROFILE_RELEASE_DEBUG=line-tables-only TARGET_DIR=target/prof
#   SYSCALLS=1         count keygate's system calls and context switches per request (perf stat)
#                      during ceilings (b) and (c) and each row; SYSCALLS=names also writes the row's
#                      calls by name (perf trace -s, which slows keygate several times over: req/s
#                      and CPU figures of such a run are not comparable) to RAW/<row>.syscalls.txt
#   TARGET_DIR=target  cargo's target directory (the binaries run from TARGET_DIR/release)
#   BUILD=0            run the binaries already in TARGET_DIR/release without building them: side by
#                      side runs of two builds, each in a TARGET_DIR of its own (the report then names
#                      the TARGET_DIR instead of a commit, which the binaries need not match)
#   KEYGATE_SQLITE_MMAP_SIZE=N, KEYGATE_CREDENTIAL_CACHE_ENTRIES=N  keygate's own settings, passed
#                      through (and named in the command BENCHMARKS.md shows)
#   WARM=1             before each verify row, every seeded key is verified once, unmeasured
#                      (bench/walk.lua), so that a credential cache sized to hold them all
#                      (KEYGATE_CREDENTIAL_CACHE_ENTRIES) starts the row with each of them
# Each verify size runs in a keygate process started afresh after its keys were seeded, so a row's
# peak RSS is its own, not what earlier rows left behind; each row prints how much of its RSS is
# file-backed (a memory-mapped database's pages). Each row and each ceiling also prints the
# serving process's CPU time per request (user and system, from /proc): on a shared machine,
# steadier than req/s (BENCHMARKS.md shows them in a table of their own); each row also keygate's
# minor page faults per request.
# It needs python3, curl and wrk (installed with apt-get when missing and run as root); with
# BENCH_POSTGRES=1 also psql.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "bench: $*" >&2
    exit 1
}

LABEL="${BENCH_LABEL:-before}"
# shellcheck source=bench/lib.sh
. bench/lib.sh
parse_label "$@"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-1}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: ROUNDS must be a positive integer" >&2; exit 1; }
CONNS="${CONNS:-64}"
THREADS="${THREADS:-$(nproc)}"
SIZES="$(tr ' ' '\n' <<<"${SIZES:-1000 1000000}" | grep . | sort -n | xargs)"
TEMP_KEYS="${TEMP_KEYS:-1000}"
TEDEE_KEYS="${TEDEE_KEYS:-6500}"
UNKNOWN_SHARE="${UNKNOWN_SHARE:-0.1}"
LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}"
BENCHMARKS="${BENCHMARKS:-BENCHMARKS.md}"
DBKIND=sqlite
[[ -n "${BENCH_POSTGRES:-}" ]] && DBKIND=postgres
if [[ -n "${BENCH_PG_CACHE:-}" ]]; then
    [[ $DBKIND == postgres* ]] || die "BENCH_PG_CACHE=1 needs BENCH_POSTGRES=1"
    DBKIND=postgres-cache
fi
[[ -n "$SIZES" ]] || die "SIZES is empty"
ROWS=" ${ROWS:-verify superoffice tedee use create} "
for r in $ROWS; do
    [[ " verify superoffice tedee use create " == *" $r "* ]] || die "unknown row $r in ROWS"
done
wanted() { [[ "$ROWS" == *" $1 "* ]]; }
PROFILE="${PROFILE:-}"
WARM="${WARM:-}"
[[ -z "$PROFILE" ]] || command -v perf >/dev/null || die "PROFILE=1 needs perf (linux-perf)"
if [[ -n "$PROFILE" ]] && ! command -v inferno-flamegraph >/dev/null; then
    # The flamegraphs' tools, built once into the project's target directory.
    export PATH="$PWD/target/tools/bin:$PATH"
    if ! command -v inferno-flamegraph >/dev/null; then
        echo "bench: installing inferno (flamegraphs) into target/tools" >&2
        cargo install --quiet --locked inferno@0.12.8 --root target/tools >&2 ||
            die "PROFILE=1: cannot install inferno (cargo install inferno)"
    fi
fi
SYSCALLS="${SYSCALLS:-}"
[[ -z "$SYSCALLS" ]] || command -v perf >/dev/null || die "SYSCALLS=1 needs perf (linux-perf)"
((THREADS <= CONNS)) || THREADS=$CONNS
H="python3 bench/helper.py"

for tool in python3 curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ $DBKIND == postgres* ]] && { command -v psql >/dev/null || die "psql is not installed (postgresql-client)"; }
if ! command -v wrk >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "wrk is not installed: apt-get install wrk (as root)"
    echo "bench: installing wrk" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq wrk >&2 || { apt-get update -qq >&2 && apt-get install -y -qq wrk >&2; }
fi

TARGET_DIR="${TARGET_DIR:-target}"
BUILD="${BUILD:-1}"
if [[ $BUILD == 0 ]]; then
    for bin in keygate examples/ceiling; do
        [[ -x "$TARGET_DIR/release/$bin" ]] || die "BUILD=0: $TARGET_DIR/release/$bin is not built"
    done
else
    echo "bench: building release" >&2
    cargo build --release --locked --target-dir "$TARGET_DIR" --bins --example ceiling
fi

WORK=$(mktemp -d)
RAW="target/bench/$DBKIND-$LABEL"
rm -rf "$RAW" && mkdir -p "$RAW"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
PID=
CPID=
PGDIR=
cleanup() {
    [[ -n "$PID" ]] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
    [[ -n "$CPID" ]] && { kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; }
    [[ -n "$PGDIR" ]] && bash scripts/pg.sh destroy "$PGDIR"
    [[ -f "$WORK/keygate.log" ]] && cp "$WORK/keygate.log" "$RAW/keygate.log"
    rm -rf "$WORK"
}
trap cleanup EXIT

# The secret keys every stored digest; the seeding computes the same digests with it.
export KEYGATE_SECRET="bench-secret-bench-secret-bench-secret-0123456789"
if [[ $DBKIND == postgres* ]]; then
    PGDIR="$WORK/pg"
    mkdir -p "$PGDIR" && chmod 777 "$WORK" "$PGDIR"
    ADMIN_URL=$(KEYGATE_PG_DURABLE=1 bash scripts/pg.sh start "$PGDIR")
    psql -X -q "$ADMIN_URL" -c 'CREATE DATABASE keygate_bench'
    DB="${ADMIN_URL%/*}/keygate_bench"
    SEED_DB=(--postgres "$DB")
else
    DB="sqlite://$WORK/keygate.db"
    SEED_DB=(--sqlite "$WORK/keygate.db")
fi

PORT=$(free_port)
CPORT=$(free_port)
KG="http://127.0.0.1:$PORT"
CEILING="http://127.0.0.1:$CPORT/"
"$TARGET_DIR/release/examples/ceiling" "127.0.0.1:$CPORT" 2>"$WORK/ceiling.log" &
CPID=$!
extra_env=()
[[ $DBKIND == postgres-cache ]] && extra_env+=("KEYGATE_POSTGRES_CREDENTIAL_CACHE=true")
((CONNS + 16 <= 256)) || extra_env+=("KEYGATE_MAX_CONNECTIONS_PER_ADDRESS=$((CONNS + 16))")
((CONNS + 16 <= 4096)) || extra_env+=("KEYGATE_MAX_CONNECTIONS=$((CONNS + 16))")
CEIL_BODY='{"key":"kgb_1.benchsecret1","scope":"read"}'
# Start keygate (appending to its log) and wait until it and the ceiling answer.
start_keygate() {
    env "${extra_env[@]}" KEYGATE_BENCH_ROUTES=true KEYGATE_LOG_LEVEL="$LOG_LEVEL" \
        "$TARGET_DIR/release/keygate" serve --listen "127.0.0.1:$PORT" --database "$DB" 2>>"$WORK/keygate.log" &
    PID=$!
    wait_up "$PID" 30 "$KG/healthz"
    wait_up "$CPID" 30 "$CEILING" -H 'Content-Type: application/json' -d "$CEIL_BODY"
}
stop_keygate() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
}
start_keygate
curl -sf -H 'Content-Type: application/json' -d "$CEIL_BODY" "$KG/_bench/bare" >/dev/null ||
    die "keygate does not serve /_bench/bare (KEYGATE_BENCH_ROUTES)"
PASS=$(sed -nE 's/.*admin password: ([^ ]+).*/\1/p' "$WORK/keygate.log" | head -1)
[[ -n "$PASS" ]] || die "no admin password in keygate's log"

echo "bench: setting up over HTTP ($TEMP_KEYS temporary keys)" >&2
SETUP="$WORK/setup.json"
$H setup "$KG" "$PASS" "$SETUP" "$WORK/temp-keys.txt" "$TEMP_KEYS"
get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SETUP" "$1"; }
APIKEY=$(get api_key)
USE_ID=$(get use_key_id)
TICKET=$(get ticket)
TEDEE_KEY=$(get tedee_key)
# The Tedee organization's other keys: the other user's personal key (made over HTTP) and copies.
$H seed "${SEED_DB[@]}" "$KEYGATE_SECRET" "$(get tedee_template_id)" 1 "$TEDEE_KEYS" 'bto_{i}.benchsecret{i}' 2
$H check "$KG" "$SETUP" tedee
$H check "$KG" "$SETUP" superoffice

HWM_RESET=1
TICKS=$(getconf CLK_TCK)
# keygate's user and system CPU time so far, in clock ticks (/proc/PID/stat fields 14 and 15;
# the name in field 2 has no spaces).
cpu_ticks() { awk '{print $14, $15}' "/proc/${1:-$PID}/stat"; }
# keygate's minor page faults so far (field 10): first touches of memory (fresh pages the kernel
# zeroes, or pages of a mapped file).
minor_faults() { awk '{print $10}' "/proc/$PID/stat"; }
# per_request NAME U0 S0 U1 S1 REQS FILE: a process's CPU time per request over a run, on stderr,
# and as JSON into FILE (for the report).
per_request() {
    [[ "${6:-0}" -gt 0 ]] || return 0
    awk -v name="$1" -v u=$(($4 - $2)) -v s=$(($5 - $3)) -v t="$TICKS" -v n="$6" -v out="$7" 'BEGIN {
        f = 1000000 / t / n
        printf "   %s CPU per request: %.1f us (user %.1f, system %.1f)\n", name, (u + s) * f, u * f, s * f
        printf "{\"cpu_us\": %.2f, \"user_us\": %.2f, \"system_us\": %.2f}\n", (u + s) * f, u * f, s * f > out
    }' >&2
}
requests() { awk '/requests in/ {print $1; exit}' "$RAW/$1.txt"; }
# ceiling ID SUFFIX PID LABEL URL [WRK_ARGS...]: one ceiling run, with the serving process's CPU
# per request. Without WRK_ARGS, wrk sends one fixed request (bench/post.lua, CEIL_BODY); with
# them (a row whose script makes each request anew), it sends the row's own requests, so that wrk
# spends as much per request on the ceiling as on the row.
ceiling() {
    local u0 s0 u1 s1 counting= id="$1" suffix="$2" pid="$3" label="$4" url="$5"
    shift 5
    (($#)) || set -- -s bench/post.lua -- "$CEIL_BODY"
    [[ -z "$SYSCALLS" || "$pid" != "$PID" ]] || counting=1
    [[ -z "$counting" ]] || count_syscalls "$id.$suffix"
    read -r u0 s0 < <(cpu_ticks "$pid")
    drive "$id.$suffix" "$url" "$@"
    read -r u1 s1 < <(cpu_ticks "$pid")
    $H show "$RAW/$id.$suffix.txt" "$label" >&2
    per_request "$label" "$u0" "$s0" "$u1" "$s1" "$(requests "$id.$suffix")" "$RAW/$id.$suffix.cpu.json"
    [[ -z "$counting" ]] || syscalls_per_request "$id.$suffix" "$label"
}
# count_syscalls NAME: keygate's system calls and context switches while wrk runs (SYSCALLS=1),
# into RAW/NAME.syscalls.csv; syscalls_per_request NAME LABEL prints them per request.
COUNT_PID=
count_syscalls() {
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$PID" -o "$RAW/$1.syscalls.csv" \
        -- sleep "$DURATION" >/dev/null 2>&1 &
    COUNT_PID=$!
}
syscalls_per_request() {
    wait "$COUNT_PID" || true
    if [[ ! -s "$RAW/$1.syscalls.csv" ]]; then
        echo "   $2 system calls per request: not counted (perf stat wrote nothing; tracepoints need" \
            "root or kernel.perf_event_paranoid <= -1)" >&2
        return 0
    fi
    awk -F, -v n="$(requests "$1")" -v name="$2" '
        $3 == "raw_syscalls:sys_enter" { c = $1 } $3 == "context-switches" { x = $1 }
        END { if (n > 0) printf "   %s system calls per request: %.2f, context switches %.3f\n", name, c / n, x / n }
    ' "$RAW/$1.syscalls.csv" >&2
}
# wrk for DURATION seconds: RAW/NAME.txt, failing on any answer that is not 2xx.
drive() {
    local name="$1"
    shift
    wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --timeout 10s --latency "$@" >"$RAW/$name.txt" 2>&1 ||
        { cat "$RAW/$name.txt" >&2; die "wrk failed ($name)"; }
    $H wrk "$RAW/$name.txt" >/dev/null || { cat "$RAW/$name.txt" >&2; die "$name: errors"; }
    sleep 1
}
# row ID KIND SIZE TITLE URL WRK_ARGS...: the three ceilings, then the row, appended to RESULTS.
# A row whose requests come from a script of its own (-s other than bench/post.lua: each
# request made anew, a random key in its body) has its ceilings driven by that same script and
# arguments (the URL swapped): wrk's Lua per request costs wrk about 2 us of CPU on these cores,
# which would otherwise count against the row alone. The other rows' ceilings get one fixed request.
row() {
    local id="$1" kind="$2" size="$3" title="$4" url="$5"
    shift 5
    local same=()
    [[ "${1:-}" != -s || "${2:-}" == bench/post.lua ]] || same=("$@")
    local k rid
    for ((k = 1; k <= ROUNDS; k++)); do
        # Raw files of round k: <id>@r<k>.* (helper.py's row reads the round from the name).
        rid="$id"
        ((ROUNDS == 1)) || rid="$id@r$k"
        echo "== $title$( ((ROUNDS == 1)) || echo " (round $k of $ROUNDS)")" >&2
        ceiling "$rid" ceil_a "$CPID" "(a) ceiling, own process" "$CEILING" "${same[@]}"
        ceiling "$rid" ceil_b "$PID" "(b) in keygate, bare" "$KG/_bench/bare" "${same[@]}"
        ceiling "$rid" ceil_c "$PID" "(c) in keygate, middleware" "$KG/_bench/middleware" "${same[@]}"
        # Reset the peak RSS to the current RSS, so VmHWM is this row's peak.
        echo 5 >"/proc/$PID/clear_refs" 2>/dev/null || HWM_RESET=0
        local perf_pid=
        if [[ -n "$PROFILE" ]]; then
            perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$PID" -o "$RAW/$rid.perf.data" \
                -- sleep "$DURATION" >/dev/null 2>&1 &
            perf_pid=$!
        fi
        local trace_pid=
        [[ -z "$SYSCALLS" ]] || count_syscalls "$rid.main"
        if [[ "$SYSCALLS" == names ]]; then
            perf trace -s -p "$PID" -o "$RAW/$rid.syscalls.txt" -- sleep "$DURATION" >/dev/null 2>&1 &
            trace_pid=$!
        fi
        local u0 s0 u1 s1 f0 f1
        read -r u0 s0 < <(cpu_ticks)
        f0=$(minor_faults)
        drive "$rid.main" "$url" "$@"
        read -r u1 s1 < <(cpu_ticks)
        f1=$(minor_faults)
        [[ -z "$SYSCALLS" ]] || syscalls_per_request "$rid.main" keygate
        if [[ -n "$trace_pid" ]]; then
            wait "$trace_pid" || true
            echo "   system calls by name: $RAW/$rid.syscalls.txt" >&2
        fi
        if [[ -n "$perf_pid" ]]; then
            wait "$perf_pid" || true
            # Inclusive and self shares per function (-g none: no call chains printed).
            perf report -i "$RAW/$rid.perf.data" --children --sort symbol -g none --stdio 2>/dev/null |
                grep -v "^#" | grep . | sed "s/  *-  *-  *$//" | head -150 >"$RAW/$rid.perf.txt" || true
            flamegraph "$rid" "$title"
            echo "   profile: $RAW/$rid.perf.txt, flamegraph: $RAW/$rid.svg (as text: $RAW/$rid.tree.txt)" >&2
        fi
        $H show "$RAW/$rid.main.txt" "$rid" >&2
        local hwm rss
        hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
        local file
        file=$(awk '/^RssFile/ {print $2}' "/proc/$PID/status")
        echo "   peak RSS $((hwm / 1024)) MiB, RSS now $((rss / 1024)) MiB (of it file-backed $((file / 1024)) MiB)" >&2
        # keygate's own CPU time over the row (user + system, from /proc): a figure that another
        # process's load on a shared machine disturbs far less than req/s.
        per_request keygate "$u0" "$s0" "$u1" "$s1" "$(requests "$rid.main")" "$RAW/$rid.main.cpu.json"
        awk -v f=$((f1 - f0)) -v n="$(requests "$rid.main")" \
            'BEGIN { if (n > 0) printf "   keygate minor page faults per request: %.3f\n", f / n }' >&2
        $H row "$RAW" "$rid" "$kind" "$size" "$title" "$hwm" "$rss" '{}' >>"$RESULTS"
    done
}

# The flamegraph of round $1's perf record: keygate's stacks folded by inferno, Rust's generic
# arguments cut from the frames (RAW/$1.folded), drawn (RAW/$1.svg; frames under 0.1% of the
# samples left out, as inferno does by default) and written as text (RAW/$1.tree.txt, frames of
# at least 2%).
flamegraph() {
    perf script -i "$RAW/$1.perf.data" 2>/dev/null | inferno-collapse-perf | $H fold >"$RAW/$1.folded" || true
    inferno-flamegraph --title "keygate: $2 ($(git rev-parse --short HEAD))" \
        --subtitle "bench/run.sh PROFILE=1, perf cpu-clock 499 Hz, $DURATION s" \
        <"$RAW/$1.folded" >"$RAW/$1.svg" 2>/dev/null || echo "   flamegraph: none (no stacks recorded)" >&2
    $H tree "$RAW/$1.folded" 2 >"$RAW/$1.tree.txt"
}

# 1234567 -> 1,234,567
thousands() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
UNKNOWN_PCT=$(awk -v s="$UNKNOWN_SHARE" 'BEGIN { printf "%g%%", s * 100 }')

# warm N: each of the N seeded keys verified once (WARM=1). Each wrk thread stops after its share
# (bench/walk.lua), but wrk itself waits out its duration: once its CPU time stops moving, it is
# told to end (SIGINT: it prints its summary), and the summary must count at least N answers.
warm() {
    echo "bench: verifying each of the $(thousands "$1") keys once (WARM=1)" >&2
    local out="$RAW/warm-$1.txt" wpid last= now
    wrk -t "$THREADS" -c "$CONNS" -d 3600s --timeout 10s --latency -s bench/walk.lua "$KG" -- "$APIKEY" "$1" "$THREADS" >"$out" 2>&1 &
    wpid=$!
    while sleep 1; do
        now=$(awk '{print $14 + $15}' "/proc/$wpid/stat" 2>/dev/null) || break
        [[ "$now" == "$last" ]] && break
        last=$now
    done
    kill -INT "$wpid" 2>/dev/null || true
    wait "$wpid" || { cat "$out" >&2; die "wrk failed (warm-up)"; }
    $H wrk "$out" >/dev/null || { cat "$out" >&2; die "warm-up: errors"; }
    (($(requests "warm-$1") >= $1)) || { cat "$out" >&2; die "warm-up: fewer answers than keys"; }
}

verify_row() {
    local n="$1"
    row "verify-$n" verify "$n" \
        "\`POST /v1/keys/verify\` by \`X-API-Key\`, random keys of $(thousands "$n") ($UNKNOWN_PCT unknown)" \
        "$KG/v1/keys/verify" -s bench/verify.lua -- "$APIKEY" "$n" "$UNKNOWN_SHARE"
}

SEEDED=0
FIRST=1
for N in $SIZES; do
    if wanted verify; then
        echo "bench: seeding native keys up to $N" >&2
        $H seed "${SEED_DB[@]}" "$KEYGATE_SECRET" "$(get native_template_id)" "$SEEDED" "$N" 'kgb_{i}.benchsecret{i}' 1
        SEEDED=$N
        # A fresh process for every verify size: its peak RSS is the row's own.
        stop_keygate
        start_keygate
        $H check "$KG" "$SETUP" verify "$N"
        [[ -z "$WARM" ]] || warm "$N"
        verify_row "$N"
    fi
    ((FIRST)) || continue
    FIRST=0
    # The other rows run once, after the first verify size.
    wanted superoffice && row superoffice superoffice "$TEMP_KEYS" \
        "SuperOffice \`CheckTemporaryKey\` by \`SOTicket\`, random keys of $(thousands "$TEMP_KEYS") ($UNKNOWN_PCT unknown)" \
        "$KG/api/v1/Agents/Person/CheckTemporaryKey" \
        -s bench/check_temporary_key.lua -- "$TICKET" "$WORK/temp-keys.txt" "$UNKNOWN_SHARE"
    wanted tedee && row tedee tedee "$TEDEE_KEYS" \
        "Tedee \`GET .../personalaccesskey\` by \`PersonalKey\`, $(thousands "$TEDEE_KEYS") other keys in the org" \
        "$KG/api/v37/my/personalaccesskey" -H "Authorization: PersonalKey $TEDEE_KEY"
    if wanted use; then
        $H check "$KG" "$SETUP" use
        # Exactness: used_count must grow by the answers wrk counted, plus at most the requests
        # in flight when it stopped (answered after it counted them).
        U0=$($H used "$KG" "$SETUP")
        row use use 1 "contended \`POST /v1/keys/{id}/use\`, one key without a use limit" \
            "$KG/v1/keys/$USE_ID/use" -s bench/post.lua -H "X-API-Key: $APIKEY"
        sleep 1
        U1=$($H used "$KG" "$SETUP")
        # Patch the use row's extra with the counts (row() wrote it with {}).
        python3 - "$RESULTS" "$U0" "$U1" "$CONNS" <<'EOF'
import json, sys
path, u0, u1, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(l) for l in open(path) if l.strip()]
# Every round of the row: used_count is read once before the first and once after the last.
mine = [r for r in rows if r["row"] == "use"]
delta, answered = u1 - u0, sum(r["main"]["requests"] for r in mine)
extra = {"delta": delta, "answered": answered, "exact": answered <= delta <= answered + conns * len(mine)}
for r in mine:
    r["extra"] = extra
open(path, "w").write("".join(json.dumps(x) + "\n" for x in rows))
if not extra["exact"]:
    print(f"bench: used_count grew by {delta} for {answered} answers", file=sys.stderr)
EOF
    fi
    wanted create && row create create 0 "\`POST /v1/keys\` (create)" "$KG/v1/keys" -s bench/create.lua -- "$APIKEY"
done

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit="$commit with uncommitted changes"
[[ $BUILD == 0 ]] && commit="the binaries in $TARGET_DIR, not built by this run"
cmd="DURATION=$DURATION CONNS=$CONNS THREADS=$THREADS SIZES=\"$SIZES\""
[[ $DBKIND == postgres* ]] && cmd="BENCH_POSTGRES=1 $cmd"
[[ $DBKIND == postgres-cache ]] && cmd="BENCH_PG_CACHE=1 $cmd"
[[ -n "$WARM" ]] && cmd="WARM=$WARM $cmd"
[[ $BUILD == 0 ]] && cmd="BUILD=0 TARGET_DIR=$TARGET_DIR $cmd"
((ROUNDS == 1)) || cmd="ROUNDS=$ROUNDS $cmd"
[[ -n "${KEYGATE_CREDENTIAL_CACHE_ENTRIES:-}" ]] &&
    cmd="KEYGATE_CREDENTIAL_CACHE_ENTRIES=$KEYGATE_CREDENTIAL_CACHE_ENTRIES $cmd"
[[ -n "${KEYGATE_SQLITE_MMAP_SIZE:-}" ]] && cmd="KEYGATE_SQLITE_MMAP_SIZE=$KEYGATE_SQLITE_MMAP_SIZE $cmd"
cmd="$cmd bench/run.sh --label $LABEL"
export B_DB="$DBKIND" B_LABEL="$LABEL" B_CMD="$cmd" B_COMMIT="$commit" B_HWM_RESET="$HWM_RESET" \
    B_DURATION="$DURATION" B_CONNS="$CONNS" B_THREADS="$THREADS" B_LOG_LEVEL="$LOG_LEVEL" B_ROUNDS="$ROUNDS" \
    B_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/meta.json" <<'EOF'
import datetime, json, os, platform, re, subprocess, sys
e = os.environ
def out(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return "?"
    return r.stdout.strip() or r.stderr.strip()
cpu = re.search(r"model name\s*:\s*(.+)", open("/proc/cpuinfo").read())
mem = int(re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read()).group(1))
meta = {
    "db": e["B_DB"],
    "db_title": {"sqlite": "SQLite", "postgres": "PostgreSQL 15",
                 "postgres-cache": "PostgreSQL 15, credential cache on"}[e["B_DB"]],
    "label": e["B_LABEL"],
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "command": e["B_CMD"],
    "commit": e["B_COMMIT"],
    "machine": {
        "nproc": os.cpu_count(),
        "cpu": cpu.group(1).strip() if cpu else "?",
        "ram": f"{mem / 1048576:.1f} GiB",
        "kernel": platform.release(),
        "rustc": " ".join(out("rustc", "--version").split()[:2]),
        "wrk": " ".join(out("wrk", "-v").split()[:2]),
        "load": e["B_LOAD"],
    },
    "settings": {
        "duration": int(e["B_DURATION"]),
        "conns": int(e["B_CONNS"]),
        "threads": int(e["B_THREADS"]),
        "log_level": e["B_LOG_LEVEL"],
        "hwm_reset": e["B_HWM_RESET"] == "1",
        "rounds": int(e["B_ROUNDS"]),
        # The ceilings of a row with a script of its own get the row's requests (see row()).
        "ceiling_requests": "row",
    },
}
json.dump(meta, open(sys.argv[1], "w"))
EOF
cp "$RESULTS" "$RAW/results.jsonl"
$H report "$RESULTS" "$WORK/meta.json" "$BENCHMARKS"
echo "bench: wrote $BENCHMARKS (raw wrk output in $RAW)" >&2
