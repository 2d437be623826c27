#!/usr/bin/env python3
"""Traffic for tests/bpf/l4_netns_test.sh and bench/l4: backends and clients of a TCP route.

  l4_traffic.py serve ADDR PORT            echo server; every connection first gets "ADDR\\n"
  l4_traffic.py txoff IFNAME               TX checksum offload off (ETHTOOL_STXCSUM, no ethtool)
  l4_traffic.py bulk HOST PORT BYTES       send BYTES random bytes, read the echo; prints
                                           "BACKEND SHA_SENT SHA_RECEIVED"
  l4_traffic.py spread HOST PORT N         N short connections; prints "BACKEND COUNT" lines
  l4_traffic.py hold HOST PORT SECONDS [STOP_FILE]
                                           one connection kept open, 1000 bytes exchanged every
                                           0.2 s for SECONDS, or until STOP_FILE exists (then
                                           SECONDS is only a cap, and reaching it is "expired");
                                           prints the backend at once, then "ok SHA", "broken",
                                           "corrupt" or "expired"
"""
import array
import fcntl
import hashlib
import os
import socket
import struct
import sys
import threading
import time


def txoff(ifname):
    # struct ethtool_value { __u32 cmd; __u32 data; } through SIOCETHTOOL.
    ETHTOOL_STXCSUM, SIOCETHTOOL = 0x17, 0x8946
    value = array.array("I", [ETHTOOL_STXCSUM, 0])
    addr, _ = value.buffer_info()
    ifreq = struct.pack("16sP16x", ifname.encode(), addr)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)


def serve(addr, port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, int(port)))
    srv.listen(512)

    def echo(c):
        with c:
            c.sendall((addr + "\n").encode())
            while True:
                data = c.recv(1 << 16)
                if not data:
                    return
                c.sendall(data)

    while True:
        c, _ = srv.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def read_line(s):
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise OSError("closed before the backend named itself")
        line += b
    return line.decode().strip()


def bulk(host, port, nbytes):
    nbytes = int(nbytes)
    s = socket.create_connection((host, int(port)), timeout=10)
    backend = read_line(s)
    sent, got = hashlib.sha256(), hashlib.sha256()
    received = [0]

    def reader():
        while received[0] < nbytes:
            d = s.recv(1 << 16)
            if not d:
                break
            got.update(d)
            received[0] += len(d)

    t = threading.Thread(target=reader)
    t.start()
    left = nbytes
    while left > 0:
        chunk = os.urandom(min(left, 1 << 16))
        sent.update(chunk)
        s.sendall(chunk)
        left -= len(chunk)
    t.join(30)
    s.close()
    print(backend, sent.hexdigest(), got.hexdigest() if received[0] == nbytes else "short")


def spread(host, port, n):
    counts = {}
    for _ in range(int(n)):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            b = read_line(s)
            counts[b] = counts.get(b, 0) + 1
    for b, c in sorted(counts.items()):
        print(b, c)


def hold(host, port, seconds, stop_file=None):
    s = socket.create_connection((host, int(port)), timeout=5)
    print(read_line(s), flush=True)
    sent, got = hashlib.sha256(), hashlib.sha256()
    end = time.time() + float(seconds)
    try:
        while not (stop_file and os.path.exists(stop_file)):
            if time.time() >= end:
                if stop_file:
                    print("expired", flush=True)
                    return
                break
            chunk = os.urandom(1000)
            sent.update(chunk)
            s.sendall(chunk)
            n = 0
            while n < len(chunk):
                d = s.recv(len(chunk) - n)
                if not d:
                    raise OSError("closed")
                got.update(d)
                n += len(d)
            time.sleep(0.2)
        print("ok" if sent.digest() == got.digest() else "corrupt", sent.hexdigest(), flush=True)
    except OSError as e:
        print("broken", e, flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"serve": serve, "txoff": txoff, "bulk": bulk, "spread": spread, "hold": hold}[cmd](*args)
