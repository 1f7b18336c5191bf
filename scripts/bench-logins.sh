#!/usr/bin/env bash
# Memory under password logins (BENCHMARKS.md): starts a release keygate (or KEYGATE_BIN) on a fresh
# SQLite database on loopback, with the login limits raised so that every attempt runs argon2id,
# then sends 64 concurrent Basic logins for SECONDS seconds in each of three cases: a known user
# with the right password, unknown users (each request another name), and 400 KB usernames (over
# POST /v1/sessions, since headers that large are refused). After
# each case it reports the server's peak RSS (VmHWM) and its RSS 5 s later (VmRSS). Bounded in time;
# not part of the test suite. Usage: scripts/bench-logins.sh [seconds per case, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_CASE="${1:-10}"
if [[ -z "${KEYGATE_BIN:-}" ]]; then
  cargo build --release --locked -q
  KEYGATE_BIN=target/release/keygate
fi
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEYGATE_LOG_LEVEL=warn \
KEYGATE_LOGIN_MAX_FAILURES_PER_USER=100000000 \
KEYGATE_LOGIN_MAX_FAILURES_PER_USER_AND_SOURCE=100000000 \
KEYGATE_LOGIN_MAX_FAILURES_PER_SOURCE=100000000 \
  "$KEYGATE_BIN" serve --listen "127.0.0.1:$PORT" --database "sqlite://$WORK/keygate.db" 2>"$WORK/keygate.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
PASS=$(sed -nE 's/.*admin password: ([^ ]+).*/\1/p' "$WORK/keygate.log" | head -1)
rss() { awk '/VmHWM|VmRSS/ {printf "%s %d MB  ", $1, $2/1024}' "/proc/$PID/status"; echo; }
echo "== at start"; rss
for case in known unknown huge; do
  python3 - "$PORT" "$PASS" "$case" "$SECONDS_PER_CASE" <<'EOF'
import base64, http.client, json, sys, threading, time, collections
port, password, case, secs = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline = time.time() + secs
counts = collections.Counter()
lock = threading.Lock()
def creds(t, i):
    if case == "known":
        return "admin", password
    if case == "unknown":
        return f"nobody-{t}-{i}", "not-the-password"
    return ("u" * 400_000) + f"{t}-{i}", "not-the-password"
def worker(t):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while time.time() < deadline:
        u, p = creds(t, i); i += 1
        auth = base64.b64encode(f"{u}:{p}".encode()).decode()
        try:
            if case == "huge":
                # Headers that large are refused by the HTTP layer; a session login's body is not.
                body = json.dumps({"username": u, "password": p})
                c.request("POST", "/v1/sessions", body=body, headers={"Content-Type": "application/json"})
            else:
                c.request("GET", "/v1/me", headers={"Authorization": f"Basic {auth}"})
            r = c.getresponse(); r.read()
            status = r.status
        except Exception as e:
            status = type(e).__name__
            c.close(); c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with lock:
            counts[status] += 1
threads = [threading.Thread(target=worker, args=(t,)) for t in range(64)]
for t in threads: t.start()
for t in threads: t.join()
print(f"== {case}: 64 clients for {secs:.0f} s: {dict(counts)}")
EOF
  echo -n "   peak and now: "; rss
  sleep 5
  echo -n "   5 s later:    "; rss
done
