#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the tests.
#
#   bash scripts/pg.sh start [DIR]    initdb (first time) and start; prints the admin URL
#   bash scripts/pg.sh stop [DIR]     stop (fast shutdown); the data stays for a restart
#   bash scripts/pg.sh url [DIR]      print the admin URL
#   bash scripts/pg.sh destroy [DIR]  stop and delete DIR
#
# DIR defaults to $KEYGATE_PG_DIR or /tmp/keygate-pg. The server listens on 127.0.0.1 only, on a
# free port chosen at initdb (kept across restarts, so a URL stays valid), with trust auth for
# loopback and durability switched off (fsync=off): it is for tests, never for data. With
# KEYGATE_PG_DURABLE=1 at the first start, durability stays on (for benchmarks).
# initdb refuses to run as root, so as root the server runs as the unprivileged `postgres`
# user (created if missing). When the binaries are missing, postgresql-15 is installed with
# apt-get (as root).
set -euo pipefail

cmd="${1:-}"
dir="${2:-${KEYGATE_PG_DIR:-/tmp/keygate-pg}}"
bin="${KEYGATE_PG_BIN:-/usr/lib/postgresql/15/bin}"
data="$dir/data"

say() { echo "pg.sh: $*" >&2; }

ensure_binaries() {
    if [[ -x "$bin/initdb" && -x "$bin/pg_ctl" ]]; then
        return
    fi
    if [[ $(id -u) -ne 0 ]]; then
        say "PostgreSQL 15 is not installed in $bin; install postgresql-15 (as root)"
        exit 1
    fi
    say "installing postgresql-15"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql-15 >&2
}

# Run a command as the server's user: `postgres` when we are root, else ourselves.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ensure_user() {
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        say "creating the system user postgres"
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

url() {
    echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
}

running() {
    [[ -f "$data/postmaster.pid" ]] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
    ensure_binaries
    ensure_user
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        chmod 0755 "$dir"
    fi
    if [[ ! -f "$data/PG_VERSION" ]]; then
        as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
        # A port below the kernel's range of ephemeral ports: while the server is stopped (the
        # restart tests), a client that keeps connecting to its port could otherwise be given
        # that very port as its own source port, connect to itself, and hold the port so that
        # the server cannot listen on it again ("Address already in use", seen in CI).
        local port low
        low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
        ((low > 21024)) || low=60000
        for _ in $(seq 1 50); do
            port=$((20000 + RANDOM % (low - 20000)))
            if port_free "$port"; then break; fi
        done
        {
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $port"
            echo "unix_socket_directories = ''"
            echo "max_connections = 300"
            if [[ -z "${KEYGATE_PG_DURABLE:-}" ]]; then
                echo "fsync = off"
                echo "synchronous_commit = off"
                echo "full_page_writes = off"
            fi
            echo "shared_buffers = 64MB"
        } | as_pg tee -a "$data/postgresql.conf" >/dev/null
        echo "$port" > "$dir/port"
    fi
    if ! running; then
        as_pg "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null \
            || { tail -20 "$dir/server.log" >&2; exit 1; }
    fi
    url
}

stop() {
    if [[ -f "$data/PG_VERSION" ]] && running; then
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    destroy) stop; rm -rf "$dir" ;;
    *) echo "usage: $0 start|stop|url|destroy [DIR]" >&2; exit 2 ;;
esac
