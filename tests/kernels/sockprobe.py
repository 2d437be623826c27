#!/usr/bin/env python3
"""Socket-level kernel feature probes of the kernel-matrix payload (tests/kernels/).

  sockprobe.py ktls-ulp   TCP_ULP "tls" on a connected loopback socket (needs the tls module)
  sockprobe.py pipe       splice(2) socket -> pipe -> socket on loopback, bytes compared

Prints "yes" or "no (reason)" and exits 0 either way; a probe that cannot run at all (no
loopback, no listener) exits 1, so the caller can tell "the kernel lacks it" from "broken probe".
"""

import os
import socket
import sys

TCP_ULP = 31  # include/uapi/linux/tcp.h


def loopback_pair():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname(), timeout=10)
    server, _ = listener.accept()
    listener.close()
    return client, server


def ktls_ulp():
    client, server = loopback_pair()
    try:
        client.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
        return "yes"
    except OSError as e:
        return "no (TCP_ULP tls: %s)" % os.strerror(e.errno)
    finally:
        client.close()
        server.close()


def pipe_splice():
    a, b = loopback_pair()
    c, d = loopback_pair()
    r, w = os.pipe()
    payload = os.urandom(256 * 1024)
    try:
        a.sendall(payload)
        moved = 0
        while moved < len(payload):
            n = os.splice(b.fileno(), w, len(payload) - moved)
            if n == 0:
                return "no (splice from the socket returned EOF)"
            left = n
            while left:
                left -= os.splice(r, c.fileno(), left)
            moved += n
        got = b""
        d.settimeout(10)
        while len(got) < len(payload):
            chunk = d.recv(65536)
            if not chunk:
                break
            got += chunk
        return "yes" if got == payload else "no (bytes differ after splice)"
    except OSError as e:
        return "no (splice: %s)" % os.strerror(e.errno)
    finally:
        for s in (a, b, c, d):
            s.close()
        os.close(r)
        os.close(w)


def main():
    probes = {"ktls-ulp": ktls_ulp, "pipe": pipe_splice}
    if len(sys.argv) != 2 or sys.argv[1] not in probes:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(probes[sys.argv[1]]())
    except OSError as e:
        print("probe failed: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
