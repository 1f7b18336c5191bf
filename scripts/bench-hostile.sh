#!/usr/bin/env bash
# How long a normal client waits while hostile SOAP envelopes arrive at once (BENCHMARKS.md).
# Starts a release keygate (or KEYGATE_BIN) on a fresh SQLite database on loopback, measures
# GET /healthz alone, then again while ENVELOPES envelopes of ~1 MB with ~100,000 attributes on one
# element are posted to /Remote/Services86/Person.svc at once. Bounded: 40 sequential probes before,
# probes during the attack for at most 90 s, each request with a 60 s cap. Not part of the test suite.
# Usage: scripts/bench-hostile.sh [envelopes at once, default 4]
set -euo pipefail
cd "$(dirname "$0")/.."
ENVELOPES="${1:-4}"
if [[ -z "${KEYGATE_BIN:-}" ]]; then
  cargo build --release --locked -q
  KEYGATE_BIN=target/release/keygate
fi
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KEYGATE_LOG_LEVEL=warn "$KEYGATE_BIN" serve --listen "127.0.0.1:$PORT" --database "sqlite://$WORK/keygate.db" \
  2>"$WORK/keygate.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
KG="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$KG/healthz" >/dev/null && break; sleep 0.1; done

python3 - "$WORK/envelope.xml" <<'EOF'
import sys
digits = "0123456789abcdefghijklmnopqrstuvwxyz"
def name(i):
    s = ""
    while True:
        s += digits[i % 36]; i //= 36
        if i == 0: return s
attrs = "".join(f' a{name(i)}=""' for i in range(100_000))
ns = "http://www.superoffice.net/ws/crm/NetServer/Services86"
doc = (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
       f'<CheckTemporaryKey xmlns="{ns}"{attrs}><TemporaryKey>x</TemporaryKey></CheckTemporaryKey>'
       f'</s:Body></s:Envelope>')
open(sys.argv[1], "w").write(doc)
EOF

probe() { curl -s -o /dev/null -m 60 -w '%{time_total}\n' "$KG/healthz" || echo 60; }
summary() { python3 -c '
import sys
xs = sorted(float(x) for x in sys.stdin.read().split())
if not xs: print("no probes"); sys.exit()
p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
print(f"{len(xs)} probes: p50 {p(0.5)*1000:.1f} ms, p99 {p(0.99)*1000:.1f} ms, max {xs[-1]*1000:.1f} ms")'; }

echo "== GET /healthz alone"
for _ in $(seq 40); do probe; done | summary

echo "== GET /healthz while $ENVELOPES hostile envelopes ($(wc -c <"$WORK/envelope.xml") bytes each) arrive at once"
HOSTILE=()
for i in $(seq "$ENVELOPES"); do
  curl -s -o "$WORK/answer.$i" -m 60 -w '%{http_code} %{time_total}\n' -H 'Content-Type: text/xml; charset=utf-8' \
    -H 'SOAPAction: "http://www.superoffice.net/ws/crm/NetServer/Services86/Person/CheckTemporaryKey"' \
    --data-binary "@$WORK/envelope.xml" "$KG/Remote/Services86/Person.svc" >"$WORK/hostile.$i" &
  HOSTILE+=($!)
done
alive() { for p in "${HOSTILE[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
START=$(date +%s)
: >"$WORK/probes"
# Probe at least once, then for as long as any hostile request is in flight (90 s at most).
probe >>"$WORK/probes"
while alive && (( $(date +%s) - START < 90 )); do
  probe >>"$WORK/probes"
done
for p in "${HOSTILE[@]}"; do wait "$p" || true; done
summary <"$WORK/probes"
echo "== the hostile requests (status, seconds)"
cat "$WORK"/hostile.*
grep -ho 'faultstring[^<]*<' "$WORK"/answer.* | sort | uniq -c || true
