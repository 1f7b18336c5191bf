#!/usr/bin/env python3
"""How long a revocation at one node takes to reach another node's credential cache on
PostgreSQL (postgres_credential_cache, invalidated by LISTEN/NOTIFY). Standard library only;
loopback only.

  python3 bench/propagation.py [--runs N] [--keygate PATH]

Starts a throwaway durable PostgreSQL 15 (scripts/pg.sh) and two keygate nodes A and B on it
with the cache on, waits for B's listener (keygate_cache_listener_connected 1), then N times:
creates a key at A, verifies it at B until B answers from its cache, revokes it at A and, as
soon as A answered, polls B back to back (one keep-alive connection) until B refuses the key.
The delay of a run is from A's answer to B's first refusing answer; "stale" counts B's answers
that still said VALID after A had answered. Prints p50 / p99 / max of the delay, the stale
answers, and B's cache hits (so the figures cannot come from an uncached B).
"""

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SECRET = "propagation-secret-propagation-secret-0123456789"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Node:
    def __init__(self, name, binary, db, work, cache=True):
        self.port = free_port()
        self.log = os.path.join(work, f"{name}.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
        env.update(
            KEYGATE_SECRET=SECRET,
            KEYGATE_LOG_LEVEL="warn",
            KEYGATE_POSTGRES_CREDENTIAL_CACHE="true" if cache else "false",
        )
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--database", db],
                stderr=f, stdout=subprocess.DEVNULL, env=env, cwd=work,
            )
        self.conn = None
        for _ in range(300):
            if self.proc.poll() is not None:
                sys.exit(f"propagation: keygate {name} exited; see {self.log}")
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                self.conn = None
            time.sleep(0.1)
        sys.exit(f"propagation: keygate {name} did not answer in 30 s")

    def request(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        try:
            self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=h)
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        return r.status, data

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--keygate", default="target/release/keygate")
    args = ap.parse_args()
    binary = os.path.abspath(args.keygate)
    if not os.access(binary, os.X_OK):
        sys.exit(f"propagation: {binary} missing; cargo build --release --bin keygate")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    work = tempfile.mkdtemp(prefix="kg-propagation-")
    pgdir = os.path.join(work, "pg")
    os.makedirs(pgdir)
    os.chmod(work, 0o777)
    os.chmod(pgdir, 0o777)
    nodes = []
    try:
        admin = subprocess.run(
            ["bash", os.path.join(repo, "scripts/pg.sh"), "start", pgdir],
            env=dict(os.environ, KEYGATE_PG_DURABLE="1"), check=True, capture_output=True, text=True,
        ).stdout.strip()
        subprocess.run(["psql", "-X", "-q", admin, "-c", "CREATE DATABASE keygate_prop"], check=True)
        db = admin.rsplit("/", 1)[0] + "/keygate_prop"

        a = Node("a", binary, db, work)
        nodes.append(a)
        b = Node("b", binary, db, work)
        nodes.append(b)
        with open(a.log) as f:
            m = re.search(r"admin password: (\S+)", f.read())
        if not m:
            sys.exit("propagation: no admin password in node A's log")
        basic = "Basic " + base64.b64encode(f"admin:{m.group(1)}".encode()).decode()

        def metrics():
            return b.request("GET", "/metrics")[1].decode()

        start = time.monotonic()
        while "keygate_cache_listener_connected 1" not in metrics():
            if time.monotonic() - start > 30:
                sys.exit("propagation: node B's listener did not connect in 30 s")
            time.sleep(0.05)

        st, body = a.request("POST", "/v1/orgs", {"name": "prop"}, {"Authorization": basic})
        assert st == 201, (st, body)
        org = {"X-API-Key": json.loads(body)["apiKey"]}

        def code_at_b(secret):
            st, body = b.request("POST", "/v1/keys/verify", {"key": secret}, org)
            assert st == 200, (st, body)
            return json.loads(body)["code"]

        def hits():
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics().splitlines()
                if line.startswith("keygate_cache_lookups_total{")
                and 'cache="credential"' in line and 'outcome="hit"' in line
            )

        delays, stale, first_hits = [], [], hits()
        for _ in range(args.runs):
            st, body = a.request("POST", "/v1/keys", {"name": "k"}, org)
            assert st == 201, (st, body)
            k = json.loads(body)
            before = hits()
            for _ in range(3):
                assert code_at_b(k["key"]) == "VALID"
            assert hits() > before, "node B does not answer from its cache"
            st, _ = a.request("DELETE", f"/v1/keys/{k['id']}", headers=org)
            assert st == 200
            answered = time.perf_counter()
            n = 0
            while True:
                code = code_at_b(k["key"])
                if code == "REVOKED":
                    break
                assert code == "VALID", code
                n += 1
                if time.perf_counter() - answered > 30:
                    sys.exit("propagation: node B still accepts a key revoked 30 s ago")
            delays.append((time.perf_counter() - answered) * 1000)
            stale.append(n)

        at_once = sum(1 for n in stale if n == 0)
        print(
            f"propagation: {args.runs} revocations at A, polled at B: delay p50 {percentile(delays, 50):.2f} ms, "
            f"p99 {percentile(delays, 99):.2f} ms, max {max(delays):.2f} ms (mean {statistics.mean(delays):.2f}); "
            f"refused on B's first request after A's answer in {at_once}/{args.runs} runs, "
            f"stale VALID answers per run: max {max(stale)}, total {sum(stale)}; "
            f"B's credential cache hits: {hits() - first_hits:.0f}"
        )
    finally:
        for n in nodes:
            n.stop()
        subprocess.run(["bash", os.path.join(repo, "scripts/pg.sh"), "destroy", pgdir], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
