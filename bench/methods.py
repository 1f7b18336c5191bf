#!/usr/bin/env python3
"""bench/methods.py: what requests with methods of the client's own making cost keygate's memory.

    python3 bench/methods.py PORT N PID

Sends N requests over one keep-alive connection to http://127.0.0.1:PORT/healthz, each with a
method never sent before (`M0000000`, `M0000001`, ...; HTTP allows any token as a method), and
prints the RSS of process PID (the keygate serving PORT) before and after. Then compare the size
of `/metrics` (`curl -s http://127.0.0.1:PORT/metrics | wc -c`).
"""
import re
import socket
import sys


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024


def main():
    port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    print(f"RSS at start {rss_mib(pid)} MiB")
    for i in range(n):
        s.sendall(f"M{i:07d} /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        f.readline()
        length = 0
        while True:
            h = f.readline()
            if h in (b"\r\n", b""):
                break
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":")[1])
        f.read(length)
    print(f"after {n} methods: RSS {rss_mib(pid)} MiB")


if __name__ == "__main__":
    main()
