#!/usr/bin/env python3
"""Moves bytes through a running ingress-agent and checks them with SHA-256 (tests/kernels/).

  stream_check.py upgrade PORT MIB [--hold-file PATH]
      GET /upgrade with "Upgrade: websocket" to the demo host, expects 101 from the echo backend,
      then streams MIB MiB through the tunnel and reads the echo back. With --hold-file, the
      tunnel stays open after the transfer (printing "HOLDING") until PATH exists, so the
      caller can look at the live flow with ingressctl; then it half-closes and expects EOF.
  stream_check.py tcp PORT MIB
      On a plain TCP route to the echo backend: MIB MiB up as POSTs (the backend answers with
      each body's SHA-256) and MIB MiB down as GET /bytes/N, on one keep-alive connection.

Prints one line per check ("ok   NAME -- detail" / "FAIL NAME -- detail", counted by lib.sh
check_lines) and exits 1 if any failed. Traffic is in
windows of at most WINDOW bytes in flight, which is what an interactive tunnel does and keeps a
sockmap flow under its redirect budget (a bulk sender that outruns the reader is reset by
design, see docs/splice.md).
"""

import hashlib
import json
import os
import socket
import sys
import time

WINDOW = 256 * 1024
TIMEOUT = 120  # TCG: a guest moves a few MiB/s through Python and the agent
DEMO_HOST = "demo.local"


def payload(n, seed):
    """n pseudo-random bytes, reproducible and cheap under emulation."""
    block = hashlib.sha256(b"sluice-%d" % seed).digest() * 2048  # 64 KiB
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(block + i.to_bytes(4, "big")).digest() + block[32:]
        i += 1
    return bytes(out[:n])


def read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("EOF before the response head (got %r)" % head[:200])
        head += chunk
    end = head.index(b"\r\n\r\n") + 4
    return head[:end].decode("latin-1"), head[end:]


def header(head, name):
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def read_exactly(sock, n, already=b""):
    buf = bytearray(already)
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def results(checks):
    """checks: (ok, name, detail); printed as "ok   NAME -- detail" / "FAIL NAME -- detail"."""
    failed = 0
    for ok, name, detail in checks:
        print("%s %s -- %s" % ("ok  " if ok else "FAIL", name, detail), flush=True)
        failed += not ok
    return 1 if failed else 0


def upgrade(port, mib, hold_file):
    size = mib << 20
    data = payload(size, 1)
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(
        b"GET /upgrade HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        % DEMO_HOST.encode()
    )
    head, rest = read_head(sock)
    status = head.split(" ", 2)[1] if " " in head else "?"
    if status != "101":
        return results([(False, "upgrade tunnel: 101 Switching Protocols",
                          "got %r" % head.split("\r\n")[0])])
    echoed = bytearray(rest)
    start = time.monotonic()
    sent = 0
    while sent < size:
        part = data[sent : sent + WINDOW]
        sock.sendall(part)
        sent += len(part)
        while len(echoed) < sent:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            echoed += chunk
        if len(echoed) < sent:
            break
    took = time.monotonic() - start
    checks = [
        (
            len(echoed) == size and hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest(),
            "upgrade tunnel: %d MiB echoed, sha256 equal" % mib,
            "%d of %d bytes, sha256 %s (%.1f MiB/s)"
            % (len(echoed), size, hashlib.sha256(echoed).hexdigest()[:16], mib / max(took, 1e-3)),
        )
    ]
    if hold_file:
        print("HOLDING", flush=True)
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(hold_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        # One more round trip after the look: the flow still works once inspected.
        tail = payload(4096, 2)
        sock.sendall(tail)
        back = read_exactly(sock, len(tail))
        checks.append((back == tail, "upgrade tunnel: a round trip after the look",
                       "%d of %d bytes back" % (len(back), len(tail))))
    sock.shutdown(socket.SHUT_WR)
    rest = sock.recv(1)
    checks.append((rest == b"", "upgrade tunnel: half-close answered with EOF", "read %r" % rest))
    sock.close()
    return results(checks)


def tcp_route(port, mib):
    """MIB MiB each way as WINDOW-sized requests on one keep-alive connection: POSTs whose
    SHA-256 the backend reports, then GETs of /bytes/WINDOW."""
    size = mib << 20
    data = payload(size, 3)
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    up_ok, up_bytes, start = True, 0, time.monotonic()
    for off in range(0, size, WINDOW):
        part = data[off : off + WINDOW]
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
            % (DEMO_HOST.encode(), len(part)) + part
        )
        head, rest = read_head(sock)
        body = read_exactly(sock, int(header(head, "content-length") or 0), rest)
        try:
            echo = json.loads(body)
        except ValueError:
            echo = {}
        if echo.get("body_sha256") != hashlib.sha256(part).hexdigest():
            up_ok = False
            break
        up_bytes += echo.get("body_bytes", 0)
    checks = [
        (
            up_ok and up_bytes == size,
            "tcp route: %d MiB up, sha256 equal" % mib,
            "the backend hashed %d of %d bytes correctly in %.1f s"
            % (up_bytes, size, time.monotonic() - start),
        )
    ]
    down = hashlib.sha256()
    down_bytes, start = 0, time.monotonic()
    for _ in range(0, size, WINDOW):
        sock.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (WINDOW, DEMO_HOST.encode()))
        head, rest = read_head(sock)
        if int(header(head, "content-length") or -1) != WINDOW:
            break
        body = read_exactly(sock, WINDOW, rest)
        down.update(body)
        down_bytes += len(body)
        if len(body) != WINDOW:
            break
    want = hashlib.sha256(b"x" * size).hexdigest()
    checks.append(
        (
            down_bytes == size and down.hexdigest() == want,
            "tcp route: %d MiB down, sha256 equal" % mib,
            "%d of %d bytes, sha256 %s (want %s) in %.1f s"
            % (down_bytes, size, down.hexdigest()[:16], want[:16], time.monotonic() - start),
        )
    )
    sock.close()
    return results(checks)


def main(argv):
    if len(argv) < 4 or argv[1] not in ("upgrade", "tcp"):
        print(__doc__, file=sys.stderr)
        return 2
    port, mib = int(argv[2]), int(argv[3])
    try:
        if argv[1] == "upgrade":
            hold = argv[5] if len(argv) > 5 and argv[4] == "--hold-file" else None
            return upgrade(port, mib, hold)
        return tcp_route(port, mib)
    except (OSError, ValueError) as e:
        name = "upgrade tunnel" if argv[1] == "upgrade" else "tcp route"
        return results([(False, name + ": no connection error", str(e))])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
