#!/usr/bin/env python3
"""Bulk TCP transfer between two cluster nodes (tests/cluster/link_rate.sh runs it).

  bw.py recv PORT              accept one connection, read to EOF, print
                               {"bytes": B, "seconds": S, "bits_per_s": R} (first byte to EOF)
  bw.py send HOST PORT SECONDS send 1 MiB writes for SECONDS, then close
"""
import json
import socket
import sys
import time


def recv(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(30)
    conn, _ = srv.accept()
    buf = bytearray(1 << 20)
    n = conn.recv_into(buf)
    t0 = time.perf_counter()
    first = n
    total = 0
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        total += n
    t1 = time.perf_counter()
    conn.close()
    s = t1 - t0
    # the first read is the clock's start: count only the bytes after it
    print(json.dumps({"bytes": total, "first_read": first, "seconds": s,
                      "bits_per_s": total * 8 / s if s > 0 else 0}))


def send(host, port, seconds):
    c = None
    for _ in range(100):  # the receiver may still be starting
        try:
            c = socket.create_connection((host, port), timeout=10)
            break
        except OSError:
            time.sleep(0.05)
    if c is None:
        sys.exit("bw.py: cannot connect to %s:%d" % (host, port))
    data = b"\0" * (1 << 20)
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        c.sendall(data)
    c.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "recv":
        recv(int(sys.argv[2]))
    elif len(sys.argv) == 5 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)
