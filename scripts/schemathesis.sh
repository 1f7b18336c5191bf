#!/usr/bin/env bash
# Checks that /openapi.json is true: runs schemathesis (pinned in scripts/schemathesis-requirements.txt,
# installed into a throwaway venv) against a fresh keygate with its own organization, and fails on
# any failure schemathesis reports. Every check schemathesis has is on; the pass is bounded
# (a fixed seed, --max-examples per operation) and talks to 127.0.0.1 only.
#
# The server is a debug build (`cargo build --locked`, which reuses the artifacts `cargo test`
# built) unless KEYGATE_BIN names a binary, on a fresh SQLite database in a temp dir and a random
# loopback port. Its failed-login limits are raised for this server only: schemathesis sends many
# deliberately wrong credentials. schemathesis authenticates with the organization's API key (the
# document's `api_key` scheme); scripts/schemathesis_hooks.py keeps its valid cases within the few
# rules JSON Schema cannot state (the clock, other members, what exists). Everything it made is
# removed on exit.
#
# Usage: scripts/schemathesis.sh [extra schemathesis arguments]
#   SCHEMATHESIS_SEED, SCHEMATHESIS_MAX_EXAMPLES, SCHEMATHESIS_TIME_LIMIT (s) override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SEED="${SCHEMATHESIS_SEED:-20260820}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-60}"
# A hard ceiling on the pass's wall time (it takes a few minutes on two cores).
TIME_LIMIT="${SCHEMATHESIS_TIME_LIMIT:-1200}"

if [[ -n "${KEYGATE_BIN:-}" ]]; then
    BIN="$KEYGATE_BIN"
else
    cargo build --locked -q --bin keygate
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/keygate"
fi
[[ -x "$BIN" ]] || { echo "schemathesis.sh: no keygate binary at $BIN" >&2; exit 2; }

WORK=$(mktemp -d /tmp/keygate-schemathesis.XXXXXX)
PID=""
cleanup() {
    if [[ -n "$PID" ]]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "schemathesis.sh: installing schemathesis into a throwaway venv"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check --no-input \
    -r "$ROOT/scripts/schemathesis-requirements.txt"
PY="$WORK/venv/bin/python"

# Loopback only, never through a proxy.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

# The server: a fresh SQLite database in the temp dir, a random loopback port, no KEYGATE_*
# settings from the caller's environment, and failed-login limits far above what one pass sends.
LOG="$WORK/keygate.log"
mkdir "$WORK/server"
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^KEYGATE_' || true)
(
    cd "$WORK/server"
    exec env \
        KEYGATE_DATABASE_URL="sqlite://$WORK/server/keygate.db" \
        KEYGATE_LOG_LEVEL=warn \
        KEYGATE_LOGIN_MAX_FAILURES_PER_USER_AND_SOURCE=1000000 \
        KEYGATE_LOGIN_MAX_FAILURES_PER_SOURCE=1000000 \
        KEYGATE_LOGIN_MAX_FAILURES_PER_USER=1000000 \
        "$BIN" serve --listen 127.0.0.1:0
) 2>"$LOG" &
PID=$!

BASE=""
for _ in $(seq 600); do
    BASE=$(sed -nE 's#^keygate: listening on (http://127\.0\.0\.1:[0-9]+)$#\1#p' "$LOG" | head -1)
    [[ -n "$BASE" ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$BASE" ]]; then
    echo "schemathesis.sh: keygate did not start:" >&2
    cat "$LOG" >&2
    exit 1
fi
PASS=$(sed -nE 's/^keygate: admin password: (.+)$/\1/p' "$LOG" | head -1)
echo "schemathesis.sh: keygate at $BASE"

# The pass's own organization, and its API key.
APIKEY=$(BASE="$BASE" PASS="$PASS" "$PY" - <<'EOF'
import base64, json, os, urllib.request
cred = base64.b64encode(f"admin:{os.environ['PASS']}".encode()).decode()
req = urllib.request.Request(
    os.environ["BASE"] + "/v1/orgs",
    data=json.dumps({"name": "schemathesis"}).encode(),
    headers={"Authorization": f"Basic {cred}", "Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=30) as r:
    print(json.load(r)["apiKey"])
EOF
)

# The organization's API key, given for the document's `api_key` scheme: schemathesis then sends it
# where the scheme says, and no made-up credentials of the other schemes beside it (keygate refuses
# a request that carries any bad credential). Its auth checks still send requests without it.
cat >"$WORK/schemathesis.toml" <<'TOML'
[auth.openapi.api_key]
api_key = "${KEYGATE_SCHEMATHESIS_API_KEY}"
TOML
export KEYGATE_SCHEMATHESIS_API_KEY="$APIKEY"

echo "schemathesis.sh: schemathesis run (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
cd "$WORK"
# Rules JSON Schema cannot state (the clock, other members, what exists): see the hooks module.
export PYTHONPATH="$ROOT/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks
set +e
timeout --kill-after=30 "$TIME_LIMIT" "$WORK/venv/bin/schemathesis" --config-file "$WORK/schemathesis.toml" \
    run "$BASE/openapi.json" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --request-timeout 30 \
    --workers 2 \
    --no-color \
    "$@" 2>&1 | tee "$WORK/run.log"
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "schemathesis.sh: the pass took longer than ${TIME_LIMIT} s" >&2
fi
if [[ $rc -ne 0 ]]; then
    echo "schemathesis.sh: FAILED (exit $rc); keygate's log:" >&2
    tail -n 50 "$LOG" >&2
    exit 1
fi
# The count in the form CI reads: "Test cases: N generated, N passed, ..." from schemathesis.
passed=$(sed -nE 's/^ *[0-9]+ generated, ([0-9]+) passed.*/\1/p' "$WORK/run.log" | tail -1)
echo "schemathesis: ${passed:-0} passed, 0 failed"
