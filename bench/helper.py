#!/usr/bin/env python3
"""The Python half of bench/run.sh (standard library only).

  helper.py setup  URL ADMIN_PASSWORD OUT_JSON TEMP_KEYS_FILE N_TEMP_KEYS
      make the bench organizations, keys, users, a SuperOffice ticket, N temporary keys and the
      Tedee personal keys over HTTP; write what the runs need as JSON
  helper.py seed   (--sqlite PATH | --postgres URL) SECRET TEMPLATE_ID START END FORMAT STREAM
      insert copies of one credential row straight into the database, one per index i in
      [START, END), each with a new id and the digest of the key FORMAT.format(i=i)
  helper.py check  URL SETUP_JSON WHAT [N]
      one request of a row, answered as the row expects (before a row is driven)
  helper.py used   URL SETUP_JSON        the use key's used_count
  helper.py wrk    FILE                  wrk's output (with --latency) as JSON; fails on any
                                         answer that is not 2xx and on socket errors
  helper.py row    RAW_DIR ID KIND SIZE TITLE HWM_KB RSS_KB EXTRA_JSON
                                         a row and its ceilings (RAW_DIR/ID.{main,ceil_a,ceil_b,ceil_c}.txt)
  helper.py show   FILE WHAT             one line for the terminal
  helper.py report RESULTS_JSONL META_JSON BENCHMARKS_MD
      rewrite bench/run.sh's section of BENCHMARKS.md with this run next to the stored ones

For bench/instructions.sh:
  helper.py native URL SETUP_JSON FILE N
      create N native keys over HTTP, their secrets into FILE (named in SETUP_JSON)
  helper.py drive  URL N CONNS KIND SETUP_JSON
      exactly N requests of KIND (ceiling, bare, middleware, verify, ctk) over CONNS keep-alive
      connections, each answered 200 (SETUP_JSON "-" for the ceiling)

For bench/run.sh PROFILE=1 (stacks folded by inferno-collapse-perf: "frame;frame;... count"):
  helper.py fold   < FOLDED > FOLDED      the same stacks with Rust's generic arguments cut out of
                                         each frame (`poll<hyper::...<...>>` -> `poll`)
  helper.py tree   FOLDED [MIN_PCT]      the flamegraph as text: frames of at least MIN_PCT (2) %
                                         of the samples, indented under their callers, a run of
                                         frames that each pass nearly all on to one callee shown
                                         as its first and last
  helper.py share  FOLDED NAME=REGEX ... the % of the samples whose stack has a frame matching
                                         each REGEX (a frame's inclusive share, wherever it sits)
"""

import datetime
import os
import hashlib
import hmac
import http.client
import json
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import uuid

NS = "http://www.superoffice.net/ws/crm/NetServer/Services86"
BEGIN = "<!-- bench/run.sh:begin -->"
END = "<!-- bench/run.sh:end -->"
DATA = "<!-- bench/run.sh:data "


def die(msg):
    print(f"bench helper: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- HTTP


class Client:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def call(self, method, path, body=None, headers=None, expect=(200, 201, 204)):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        text = r.read().decode()
        if expect and r.status not in expect:
            die(f"{method} {path}: {r.status} {text[:500]}")
        return r.status, text

    def json(self, method, path, body=None, headers=None):
        _, text = self.call(method, path, body, headers)
        return json.loads(text)


def basic(user, password):
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def setup(url, admin_password, out_json, temp_keys_file, n_temp):
    c = Client(url)
    admin = basic("admin", admin_password)
    now = datetime.datetime.now(datetime.timezone.utc)
    org = c.json("POST", "/v1/orgs", {"name": "bench"}, admin)
    ak = {"X-API-Key": org["apiKey"]}
    native = c.json("POST", "/v1/keys", {"name": "bench", "scopes": ["read"]}, ak)
    use = c.json("POST", "/v1/keys", {"name": "bench uses"}, ak)
    if use.get("max_uses") is not None:
        die("the use key has a use limit")
    # SuperOffice: a user of the organization, its ticket from SoPrincipal, and temporary keys.
    c.json("POST", "/v1/users", {"username": "bench-so", "password": "bench-password-so"}, ak)
    envelope = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<AuthenticateUsernamePassword xmlns="{NS}"><UserName>bench-so</UserName>'
        "<Password>bench-password-so</Password></AuthenticateUsernamePassword></s:Body></s:Envelope>"
    )
    _, text = c.call(
        "POST",
        "/Remote/Services86/SoPrincipal.svc",
        envelope,
        {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{NS}/SoPrincipal/AuthenticateUsernamePassword"',
        },
    )
    m = re.search(r"<Ticket>([^<]+)</Ticket>", text)
    if "<AuthenticationSucceeded>true</AuthenticationSucceeded>" not in text or not m:
        die(f"SoPrincipal login failed: {text[:500]}")
    ticket = m.group(1)
    so = {"Authorization": f"SOTicket {ticket}"}
    expires = iso(now + datetime.timedelta(days=2))
    with open(temp_keys_file, "w") as f:
        for i in range(n_temp):
            body = {"Domain": "ChangePasswordCustomerCenter", "TargetId": i + 1, "PersonId": 0, "Expires": expires}
            key = c.json("POST", "/api/v1/Agents/Person/CreateTemporaryKey", body, so)
            f.write(key + "\n")
    # Tedee: an organization of its own, whose other keys bench/run.sh seeds: two users, each
    # with a personal key made over HTTP; the other user's is the template of the seeded rows.
    org2 = c.json("POST", "/v1/orgs", {"name": "bench-tedee"}, admin)
    ak2 = {"X-API-Key": org2["apiKey"]}
    valid_to = iso(now + datetime.timedelta(days=365))
    personal = {}
    for user in ("bench-tedee", "bench-tedee-other"):
        c.json("POST", "/v1/users", {"username": user, "password": "bench-password-" + user}, ak2)
        body = {"name": "bench", "validTo": valid_to, "scopes": ["Account.Read"]}
        r = c.json("POST", "/api/v37/my/personalaccesskey", body, basic(user, "bench-password-" + user))
        personal[user] = r["result"]
    out = {
        "org_id": org["id"],
        "api_key": org["apiKey"],
        "native_template_id": native["id"],
        "use_key_id": use["id"],
        "ticket": ticket,
        "temp_keys_file": temp_keys_file,
        "tedee_key": personal["bench-tedee"]["key"],
        "tedee_template_id": personal["bench-tedee-other"]["id"],
    }
    with open(out_json, "w") as f:
        json.dump(out, f, indent=1)


def check(url, setup_json, what, n=None):
    s = json.load(open(setup_json))
    c = Client(url)
    ak = {"X-API-Key": s["api_key"]}
    if what == "verify":
        n = int(n)
        for i in (0, n - 1):
            r = c.json("POST", "/v1/keys/verify", {"key": f"kgb_{i}.benchsecret{i}", "scope": "read"}, ak)
            if r.get("code") != "VALID":
                die(f"seeded key {i} does not verify: {r}")
        r = c.json("POST", "/v1/keys/verify", {"key": "kgb_0.unknown0", "scope": "read"}, ak)
        if r.get("code") != "NOT_FOUND":
            die(f"an unknown key answers {r}")
    elif what == "superoffice":
        so = {"Authorization": f"SOTicket {s['ticket']}"}
        key = open(s["temp_keys_file"]).readline().strip()
        r = c.json("POST", "/api/v1/Agents/Person/CheckTemporaryKey", {"TemporaryKey": key}, so)
        if r.get("Domain") in (None, "Unknown") or r.get("IsExpired"):
            die(f"a temporary key checks as {r}")
        r = c.json("POST", "/api/v1/Agents/Person/CheckTemporaryKey", {"TemporaryKey": "benchunknown1"}, so)
        if r.get("Domain") != "Unknown":
            die(f"an unknown temporary key checks as {r}")
    elif what == "tedee":
        r = c.json("GET", "/api/v37/my/personalaccesskey", None, {"Authorization": f"PersonalKey {s['tedee_key']}"})
        if len(r.get("result") or []) != 1:
            die(f"the Tedee list answers {str(r)[:300]}")
    elif what == "use":
        r = c.json("POST", f"/v1/keys/{s['use_key_id']}/use", None, ak)
        if r.get("code") != "VALID":
            die(f"the use key answers {r}")
    else:
        die(f"check: unknown row {what}")


def used(url, setup_json):
    s = json.load(open(setup_json))
    r = Client(url).json("GET", f"/v1/keys/{s['use_key_id']}", None, {"X-API-Key": s["api_key"]})
    print(r["used_count"])


# ---------------------------------------------------------------- seeding


def seeded_id(stream, i, ts_ms):
    """A UUIDv7 (time ordered like keygate's own ids) whose low bits are the stream and index."""
    v = (ts_ms << 80) | (0x7 << 76) | ((stream & 0xFFF) << 64) | (0b10 << 62) | i
    return str(uuid.UUID(int=v))


def seed(kind, target, secret, template, start, end, fmt, stream):
    base = hmac.new(secret.encode(), b"keygate/credential\0", hashlib.sha256)
    ts = int(time.time() * 1000)
    t0 = time.time()

    def rows():
        for i in range(start, end):
            key = fmt.format(i=i)
            h = base.copy()
            h.update(key.encode())
            yield seeded_id(stream, i, ts), key.split(".", 1)[0], h.digest()

    if kind == "sqlite":
        con = sqlite3.connect(target, timeout=60, isolation_level=None)
        con.execute("PRAGMA busy_timeout = 60000")
        # This connection's own page cache, so a million index entries go in quickly.
        con.execute("PRAGMA cache_size = -262144")
        cur = con.execute("SELECT * FROM credentials WHERE id = ?", (template,))
        cols = [d[0] for d in cur.description]
        row = cur.fetchone()
        if row is None:
            die(f"no credential {template}")
        at = {c: i for i, c in enumerate(cols)}
        sql = f"INSERT INTO credentials ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

        def full():
            r = list(row)
            for id_, prefix, digest in rows():
                r[at["id"]], r[at["prefix"]], r[at["hash"]] = id_, prefix, digest
                yield tuple(r)

        it = full()
        while True:
            batch = [x for _, x in zip(range(50_000), it)]
            if not batch:
                break
            con.execute("BEGIN IMMEDIATE")
            con.executemany(sql, batch)
            con.execute("COMMIT")
        # Settle: every seeded page into the database file and the WAL emptied, as a server that
        # has run a while finds it (reads of pages still in the WAL cost a lookup and a pread more).
        busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            print("bench: the WAL could not be emptied after seeding (a reader was busy)", file=sys.stderr)
        con.close()
    else:

        def psql(sql):
            return subprocess.run(
                ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", target, "-c", sql],
                check=True,
                capture_output=True,
                text=True,
            ).stdout

        cols = psql(
            "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'credentials'"
        ).strip()
        line = psql(f"COPY (SELECT {cols} FROM credentials WHERE id = '{uuid.UUID(template)}') TO STDOUT")
        if not line.strip():
            die(f"no credential {template}")
        fields = line.rstrip("\n").split("\t")
        at = {c.strip('"'): i for i, c in enumerate(cols.split(","))}
        p = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", target, "-c", f"COPY credentials ({cols}) FROM STDIN"],
            stdin=subprocess.PIPE,
            text=True,
        )
        buf = []
        for id_, prefix, digest in rows():
            fields[at["id"]], fields[at["prefix"]] = id_, prefix
            fields[at["hash"]] = "\\\\x" + digest.hex()
            buf.append("\t".join(fields))
            if len(buf) >= 10_000:
                p.stdin.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            p.stdin.write("\n".join(buf) + "\n")
        p.stdin.close()
        if p.wait() != 0:
            die("COPY into PostgreSQL failed")
        # Autovacuum would analyze the grown table at a moment of its choosing; do it now, so
        # that it does not happen in the middle of a run.
        psql("ANALYZE credentials")
    print(f"seeded {end - start} rows ({fmt}) in {time.time() - t0:.1f} s", file=sys.stderr)


# ---------------------------------------------------------------- wrk output

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", v)
    if not m:
        die(f"cannot read the latency {v!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        die(f"no Requests/sec in wrk's output:\n{text}")
    out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+),", text)
    out["requests"] = int(m.group(1)) if m else 0
    # wrk pads a latency of a second or more with a trailing space ("99%    1.24s ").
    dist = re.search(r"Latency Distribution\n((?:[ \t]+\d+%[ \t]+\S+[ \t]*\n)+)", text)
    if not dist:
        die(f"no latency distribution in wrk's output (--latency):\n{text}")
    for pct, v in re.findall(r"(\d+)%\s+(\S+)", dist.group(1)):
        out[f"p{pct}_us"] = to_us(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    return out


def wrk(path):
    """Print the parsed figures; fail when any answer was not 2xx or any socket failed."""
    out = parse_wrk(open(path).read())
    print(json.dumps(out))
    errors = {k: v for k, v in out["socket_errors"].items() if v}
    if out["non2xx"] or errors or not out["requests"]:
        die(f"{path}: {out['non2xx']} answers were not 2xx, socket errors {errors}, {out['requests']} requests")


def row(raw, id_, kind, size, title, hwm_kb, rss_kb, extra):
    """One row of the results: the row's run and its three ceilings, as one JSON line. With ROUNDS,
    ID_ is <row>@r<k> (round k's raw files)."""
    parts = {p: parse_wrk(open(f"{raw}/{id_}.{p}.txt").read()) for p in ("main", "ceil_a", "ceil_b", "ceil_c")}
    for p, part in parts.items():
        # The serving process's CPU time per request (bench/run.sh's per_request), when measured.
        if os.path.exists(f"{raw}/{id_}.{p}.cpu.json"):
            part["cpu"] = json.load(open(f"{raw}/{id_}.{p}.cpu.json"))
    parts["main"]["hwm_kb"] = int(hwm_kb)
    parts["main"]["rss_kb"] = int(rss_kb)
    name, _, round_ = id_.partition("@r")
    out = {"row": name, "kind": kind, "size": int(size), "title": title, **parts, "extra": json.loads(extra)}
    if round_:
        out["round"] = int(round_)
    print(json.dumps(out))


def ratio_a(r):
    return r["main"]["rps"] / r["ceil_a"]["rps"]


def collapse(rows):
    """ROUNDS: a row's rounds become the one whose req/s ratio to ceiling (a) is the median (the
    lower one of an even count), carrying every round's ratios in `rounds`, in the order run."""
    groups = {}
    for r in rows:
        groups.setdefault(r["row"], []).append(r)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        chosen = dict(sorted(group, key=ratio_a)[(len(group) - 1) // 2])
        # The row's peak RSS: the highest of its rounds.
        chosen["main"] = {**chosen["main"], "hwm_kb": max(r["main"].get("hwm_kb", 0) for r in group)}
        chosen["rounds"] = [
            {
                "round": r.get("round"),
                "a": round(ratio_a(r), 3),
                "b": round(r["main"]["rps"] / r["ceil_b"]["rps"], 3),
                "rps": r["main"]["rps"],
                **({"cpu_a": round(r["main"]["cpu"]["cpu_us"] / r["ceil_a"]["cpu"]["cpu_us"], 3)}
                   if "cpu" in r["main"] and "cpu" in r["ceil_a"] else {}),
            }
            for r in group
        ]
        out.append(chosen)
    return out


def show(path, what):
    """One line for the terminal."""
    r = parse_wrk(open(path).read())
    print(f"   {what:<28} {fmt_rps(r['rps']):>9} req/s  p50 {fmt_ms(r['p50_us']):>9}  p99 {fmt_ms(r['p99_us']):>9}")


# ---------------------------------------------------------------- BENCHMARKS.md


def fmt_rps(v):
    return f"{v:,.0f}"


def fmt_ms(us):
    ms = us / 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_mb(kb):
    return f"{kb * 1024 / 1e6:.0f} MB" if kb else "?"


def yes(ok):
    return "**yes**" if ok else "no"


def evaluate(row, rows):
    """The issue's target for a row, and whether it holds against ceiling (a) and (b)."""
    main, a, b = row["main"], row["ceil_a"], row["ceil_b"]
    kind = row["kind"]
    if kind == "verify":
        sizes = sorted(r["size"] for r in rows if r["kind"] == "verify")
        if row["size"] == sizes[0]:
            def ok(c):
                return main["rps"] >= 0.8 * c["rps"] and main["p99_us"] <= 1.5 * c["p99_us"]

            return "≥ 0.8 × ceiling, p99 ≤ 1.5 × ceiling's", f"{yes(ok(a))} / {yes(ok(b))}"
        small = next(r for r in rows if r["kind"] == "verify" and r["size"] == sizes[0])
        within = main["rps"] >= 0.9 * small["main"]["rps"]
        rss = main.get("hwm_kb", 0) * 1024 <= 150e6
        return (
            f"within 10% of the {sizes[0]:,}-key row, RSS ≤ 150 MB",
            f"{yes(within and rss)} ({main['rps'] / small['main']['rps']:.2f} × its req/s; peak {fmt_mb(main.get('hwm_kb'))})",
        )
    if kind in ("superoffice", "tedee"):
        return "≥ 0.7 × ceiling", f"{yes(main['rps'] >= 0.7 * a['rps'])} / {yes(main['rps'] >= 0.7 * b['rps'])}"
    if kind == "use":
        exact = row.get("extra", {}).get("exact", False)
        return "≥ 2,000/s, still exact", f"{yes(main['rps'] >= 2000 and exact)} (exact: {'yes' if exact else 'NO'})"
    if kind == "create":
        return "≥ 5,000/s", yes(main["rps"] >= 5000)
    return "", ""


def render_run(run):
    rows = run["rows"]
    s = run["settings"]
    mach = run["machine"]
    lines = [
        f"### {run['db_title']}, {run['label']}: {run['date']}",
        "",
        f"Command: `{run['command']}` ({s['duration']} s per run, {s['conns']} connections, {s['threads']} wrk "
        f"threads, keygate log level `{s['log_level']}`), on {run['commit']}.",
        f"Machine: {mach['nproc']} × {mach['cpu']}, {mach['ram']} RAM, Linux {mach['kernel']}, {mach['rustc']}, "
        f"{mach['wrk']}; load average {mach['load']} at the start. wrk, keygate"
        + (", PostgreSQL" if run["db"].startswith("postgres") else "")
        + " and the ceilings share these cores.",
        "",
        "| row | req/s | p50 | p99 | peak RSS | × ceiling (a), own process | × ceiling (b), in keygate | target | holds vs (a) / (b) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, a, b = r["main"], r["ceil_a"], r["ceil_b"]
        target, holds = evaluate(r, rows)
        lines.append(
            f"| {r['title']} | {fmt_rps(m['rps'])} | {fmt_ms(m['p50_us'])} | {fmt_ms(m['p99_us'])} | "
            f"{fmt_mb(m.get('hwm_kb'))} | {m['rps'] / a['rps']:.2f} | {m['rps'] / b['rps']:.2f} | {target} | {holds} |"
        )
    lines += [
        "",
        "The ceilings, measured right before each row: (a) `examples/ceiling.rs`, a bare axum JSON handler in a "
        "process of its own; (b) the same handler in keygate's process, outside its middleware "
        "(`POST /_bench/bare`); (c) the same handler inside keygate's middleware (`POST /_bench/middleware`). "
        "c / b is what the middleware keeps of the bare handler's throughput. "
        + (
            "The ceilings of the rows whose requests a script makes anew (verify, CheckTemporaryKey, create) "
            "were sent those very requests (the same script and arguments, the URL swapped), so that wrk spent as "
            "much per request on them as on the row; the other rows' ceilings got one fixed request."
            if s.get("ceiling_requests") == "row"
            else "Every ceiling was sent one fixed request (`bench/post.lua`), whatever the row's requests."
        ),
        "",
        "| row | (a) req/s, p99 | (b) req/s, p99 | (c) req/s, p99 | c / b |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        a, b, c = r["ceil_a"], r["ceil_b"], r["ceil_c"]
        lines.append(
            f"| {r['title']} | {fmt_rps(a['rps'])}, {fmt_ms(a['p99_us'])} | {fmt_rps(b['rps'])}, {fmt_ms(b['p99_us'])} | "
            f"{fmt_rps(c['rps'])}, {fmt_ms(c['p99_us'])} | {c['rps'] / b['rps']:.2f} |"
        )
    notes = []
    if all("cpu" in r[p] for r in rows for p in ("main", "ceil_a", "ceil_b", "ceil_c")):
        # Steadier than req/s on a shared machine: other processes' load moves it far less.
        lines += [
            "",
            "CPU time per request of the serving process (user and system, from `/proc`): keygate's for the row "
            "and for (b) and (c), the ceiling's own process for (a).",
            "",
            "| row | row, µs (user, system) | (a) µs | (b) µs | (c) µs | row / (a) |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            m, a, b, c = (r[p]["cpu"] for p in ("main", "ceil_a", "ceil_b", "ceil_c"))
            lines.append(
                f"| {r['title']} | {m['cpu_us']:.1f} ({m['user_us']:.1f}, {m['system_us']:.1f}) | {a['cpu_us']:.1f} | "
                f"{b['cpu_us']:.1f} | {c['cpu_us']:.1f} | {m['cpu_us'] / a['cpu_us']:.2f} |"
            )
    for r in rows:
        m, x = r["main"], r.get("extra", {})
        if r["kind"] == "verify" and m.get("rss_kb"):
            notes.append(
                f"- {r['title']}: peak RSS {fmt_mb(m['hwm_kb'])}, RSS after the run {fmt_mb(m['rss_kb'])}."
            )
        if r["kind"] == "use":
            notes.append(
                f"- Uses: `used_count` grew by {x['delta']:,} while wrk counted {x.get('answered', m['requests']):,} answers "
                f"(requests still in flight when wrk stops are answered after it counted), so the count is "
                f"{'exact' if x['exact'] else 'NOT exact'}."
            )
    if any("rounds" in r for r in rows):
        notes.append(
            f"- Rounds: each row ran {s.get('rounds', '?')} times, its three ceilings right before each round; the "
            "tables show the round whose req/s ratio to ceiling (a) is the median (its peak RSS: the highest of the "
            "rounds). Every round's ratios to (a) / (b)"
            + (" and its CPU per request against (a)'s" if all("cpu_a" in x for r in rows for x in r.get("rounds", [])) else "")
            + ", in the order run:"
        )
        for r in rows:
            if "rounds" in r:
                each = ", ".join(
                    f"{x['a']:.2f} / {x['b']:.2f}" + (f" ({x['cpu_a']:.2f})" if "cpu_a" in x else "") for x in r["rounds"]
                )
                notes.append(f"  - {r['title']}: {each}")
    notes.append(
        f"- Every row got only 2xx answers (wrk's non-2xx and socket-error counts were 0). Peak RSS is keygate's "
        f"`VmHWM`, reset before each row{'' if s.get('hwm_reset') else ' (could not be reset: the peak so far)'}."
    )
    lines += ["", *notes]
    return lines


def render_compare(before, after):
    rows_b = {r["row"]: r for r in before["rows"]}
    lines = [
        f"### {after['db_title']}: before and after",
        "",
        "| row | before req/s | after req/s | change | before p99 | after p99 | after × ceiling (a) / (b) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in after["rows"]:
        b = rows_b.get(r["row"])
        if not b:
            continue
        m, mb = r["main"], b["main"]
        lines.append(
            f"| {r['title']} | {fmt_rps(mb['rps'])} | {fmt_rps(m['rps'])} | {m['rps'] / mb['rps']:.2f} × | "
            f"{fmt_ms(mb['p99_us'])} | {fmt_ms(m['p99_us'])} | "
            f"{m['rps'] / r['ceil_a']['rps']:.2f} / {m['rps'] / r['ceil_b']['rps']:.2f} |"
        )
    return lines


def wrap(lines):
    """Prose lines wrapped at 110 columns as the rest of BENCHMARKS.md; tables and markers stay."""
    import textwrap

    out = []
    for line in lines:
        if len(line) <= 110 or line.startswith(("|", "<!--", "#")):
            out.append(line)
        else:
            # A list item's lines continue under its text (a nested item's too).
            lead = len(line) - len(line.lstrip(" "))
            indent = " " * (lead + 2) if line.lstrip(" ").startswith("- ") else ""
            out += textwrap.wrap(line, 110, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    return out


def render_section(runs):
    out = [
        BEGIN,
        "## Over HTTP: `bench/run.sh` (wrk)",
        "",
        "Written by `bench/run.sh`, which rewrites only what lies between its two markers. It builds release, "
        "starts keygate on a fresh database with a fixed secret, makes an organization and its API key, seeds "
        "keys straight into the database, and drives each row with wrk for the same time, with the ceilings "
        "measured right before each row in the same run. The verify rows present a key picked at random out of "
        "the seeded ones for each request, about 10% of them unknown; the SuperOffice row does the same over "
        "1,000 temporary keys made over HTTP. `--label after` keeps the `before` run next to the new one.",
    ]
    order = {"before": 0, "after": 1}
    for db in ("sqlite", "postgres", "postgres-cache"):
        mine = sorted((r for r in runs if r["db"] == db), key=lambda r: (order.get(r["label"], 2), r["label"]))
        for run in mine:
            out += ["", *render_run(run)]
        labels = {r["label"]: r for r in mine}
        if "before" in labels and "after" in labels:
            out += ["", *render_compare(labels["before"], labels["after"])]
        for run in mine:
            out.append(DATA + json.dumps(run, separators=(",", ":")) + " -->")
    if not runs:
        out += ["", "No run yet."]
    out.append(END)
    return "\n".join(wrap(out))


def report(results_jsonl, meta_json, md_path):
    run = json.load(open(meta_json))
    run["rows"] = collapse([json.loads(line) for line in open(results_jsonl) if line.strip()])
    text = open(md_path).read() if os.path.exists(md_path) else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        section, tail = rest.split(END, 1)
    else:
        head, section, tail = text.rstrip("\n") + "\n\n", "", "\n"
    runs = []
    for line in section.splitlines():
        if line.startswith(DATA):
            old = json.loads(line[len(DATA) : -len(" -->")])
            if (old["db"], old["label"]) != (run["db"], run["label"]):
                runs.append(old)
    runs.append(run)
    with open(md_path, "w") as f:
        f.write(head + render_section(runs) + tail)
    print("\n".join(render_run(run)))


# ---------------------------------------------------------------- bench/instructions.sh


def native(url, setup_json, keys_file, n):
    s = json.load(open(setup_json))
    c = Client(url)
    ak = {"X-API-Key": s["api_key"]}
    with open(keys_file, "w") as f:
        for i in range(int(n)):
            f.write(c.json("POST", "/v1/keys", {"name": f"bench {i}", "scopes": ["read"]}, ak)["key"] + "\n")
    s["native_keys_file"] = keys_file
    with open(setup_json, "w") as f:
        json.dump(s, f, indent=1)


def drive(url, n, conns, kind, setup_json):
    import threading

    n, conns = int(n), int(conns)
    s = {} if setup_json == "-" else json.load(open(setup_json))
    lines = lambda k: [l.strip() for l in open(s[k]) if l.strip()] if k in s else []
    temp, native_keys = lines("temp_keys_file"), lines("native_keys_file")
    js = {"Content-Type": "application/json"}
    bare = json.dumps({"key": "kgb_0.benchsecret0"})

    def request(i):
        if kind in ("ceiling", "bare", "middleware"):
            path = {"ceiling": "/", "bare": "/_bench/bare", "middleware": "/_bench/middleware"}[kind]
            return path, bare, js
        if kind == "verify":
            body = json.dumps({"key": native_keys[i % len(native_keys)], "scope": "read"})
            return "/v1/keys/verify", body, {**js, "X-API-Key": s["api_key"]}
        if kind == "ctk":
            body = json.dumps({"TemporaryKey": temp[i % len(temp)]})
            return "/api/v1/Agents/Person/CheckTemporaryKey", body, {**js, "Authorization": f"SOTicket {s['ticket']}"}
        if kind == "tedee":
            return "/api/v37/my/personalaccesskey", None, {"Authorization": f"PersonalKey {s['tedee_key']}"}
        die(f"drive: unknown kind {kind}")

    failed = []

    def worker(k):
        c = Client(url)
        try:
            for i in range(k, n, conns):
                path, body, headers = request(i)
                c.call("GET" if body is None else "POST", path, body, headers, expect=(200,))
        except SystemExit as e:
            failed.append(str(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        die(f"drive {kind}: a request failed")


def short_frame(frame):
    """A frame without the generic arguments of its types and functions: each `<...>` that
    follows a name is cut, a leading `<T as Trait>` is kept as `<T as Trait>` with its own
    arguments cut."""
    out, depth = [], 0
    for i, ch in enumerate(frame):
        if ch == "<":
            # Generic arguments follow a name character; a qualified path's `<` does not.
            if depth or (i > 0 and (frame[i - 1].isalnum() or frame[i - 1] in "_>}")):
                depth += 1
                continue
        elif ch == ">" and depth:
            depth -= 1
            continue
        if not depth:
            out.append(ch)
    return "".join(out)


def folded(lines):
    """(frames, count) of each line "frame;frame;... count" of a folded profile."""
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def read_folded(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        yield from folded(f)


def fold(inp, out):
    merged = {}
    for frames, count in folded(inp):
        key = ";".join(short_frame(f) for f in frames)
        merged[key] = merged.get(key, 0) + count
    for key, count in merged.items():
        out.write(f"{key} {count}\n")


def tree(path, min_pct="2"):
    root = {"n": 0, "kids": {}}
    for frames, count in read_folded(path):
        node = root
        node["n"] += count
        for frame in frames:
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += count
    total = root["n"] or 1
    floor = total * float(min_pct) / 100

    def walk(name, node, indent):
        # A run of frames each of which passes >= 97% of its samples to one callee: first ... last.
        first, skipped = name, 0
        while True:
            big = [(k, v) for k, v in node["kids"].items() if v["n"] >= floor]
            if len(big) == 1 and big[0][1]["n"] >= 0.97 * node["n"]:
                name, node = big[0]
                skipped += 1
                continue
            break
        if skipped == 0:
            label = first
        elif skipped == 1:
            label = f"{first} > {name}"
        else:
            label = f"{first} ... ({skipped - 1} frames) ... {name}"
        print(f"{100 * node['n'] / total:5.1f}% {'  ' * indent}{label}")
        for k, v in sorted(node["kids"].items(), key=lambda kv: -kv[1]["n"]):
            if v["n"] >= floor:
                walk(k, v, indent + 1)

    for k, v in sorted(root["kids"].items(), key=lambda kv: -kv[1]["n"]):
        if v["n"] >= floor:
            walk(k, v, 0)


def share(path, *named):
    pats = [(n, re.compile(r)) for n, _, r in (a.partition("=") for a in named)]
    hits, total = [0] * len(pats), 0
    for frames, count in read_folded(path):
        total += count
        for i, (_, pat) in enumerate(pats):
            if any(pat.search(fr) for fr in frames):
                hits[i] += count
    for (name, _), h in zip(pats, hits):
        print(f"{100 * h / (total or 1):5.1f}% {name}")


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "setup":
        setup(args[0], args[1], args[2], args[3], int(args[4]))
    elif cmd == "seed":
        kind = args[0].lstrip("-")
        seed(kind, args[1], args[2], args[3], int(args[4]), int(args[5]), args[6], int(args[7]))
    elif cmd == "check":
        check(*args)
    elif cmd == "used":
        used(*args)
    elif cmd == "wrk":
        wrk(args[0])
    elif cmd == "row":
        row(*args)
    elif cmd == "show":
        show(*args)
    elif cmd == "report":
        report(*args)
    elif cmd == "native":
        native(*args)
    elif cmd == "drive":
        drive(*args)
    elif cmd == "fold":
        fold(sys.stdin, sys.stdout)
    elif cmd == "tree":
        tree(*args)
    elif cmd == "share":
        share(*args)
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
