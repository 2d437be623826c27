#!/usr/bin/env python3
"""kTLS on this kernel, through the real agent (groups/60-tls.sh).

  tls_check.py HTTPS_PORT ADMIN KTLS_EXPECTED MIB

KTLS_EXPECTED is "yes" when the agent said "kTLS: on" (the tls module loaded), else "no".
Over TLS 1.2 and TLS 1.3: a MIB-MiB response body (Content-Length: the agent splices it from the
backend into the client socket when kTLS does the record layer) and a MIB-MiB upload (spliced
from the client socket when kTLS receives), each checked byte for byte; then the agent's
sluice_tls_ktls_connections_total must equal the number of TLS 1.2 connections when kTLS is on
(TLS 1.3 never uses it on OpenSSL 3.0: docs/tls.md) and 0 when it is off, and /proc/net/tls_stat
must have counted the kernel's work. Every TLS 1.3 connection must have gone to the agent's own
record layer after its handshake (sluice_tls_record_layer_total{layer="sluice"}). One line per check: "ok   NAME -- detail" / "FAIL ...".
"""

import hashlib
import socket
import ssl
import sys
import urllib.request


def request(port, version, method, path, body=b""):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=120) as raw:
        with ctx.wrap_socket(raw, server_hostname="k.test") as s:
            head = "%s %s HTTP/1.1\r\nHost: k.test\r\nConnection: close\r\n" % (method, path)
            if body:
                head += "Content-Length: %d\r\n" % len(body)
            s.sendall(head.encode() + b"\r\n" + body)
            data = bytearray()
            while True:
                try:
                    chunk = s.recv(1 << 20)
                except ssl.SSLZeroReturnError:
                    break
                if not chunk:
                    break
                data += chunk
            return s.version(), bytes(data)


def split(response):
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), body


def metric(admin, name):
    text = urllib.request.urlopen("http://%s/metrics" % admin, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


def tls_stat():
    try:
        with open("/proc/net/tls_stat") as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}
    except OSError:
        return {}


def main():
    port, admin, expected, mib = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    size = mib << 20
    upload = bytes(range(256)) * (size // 256)
    want_upload = hashlib.sha256(upload).hexdigest()
    tls12 = tls13 = 0
    for name, version in (("TLS 1.2", ssl.TLSVersion.TLSv1_2), ("TLS 1.3", ssl.TLSVersion.TLSv1_3)):
        got, response = request(port, version, "GET", "/bytes/%d" % size)
        head, body = split(response)
        ok = got == name.replace(" ", "v") and " 200 " in head.splitlines()[0] and body == b"x" * size
        print("%s %s download %d MiB intact -- %s, %d bytes" % ("ok  " if ok else "FAIL", name, mib, got, len(body)))
        got, response = request(port, version, "POST", "/upload", upload)
        head, body = split(response)
        ok = want_upload in body.decode(errors="replace") and '"body_bytes": %d' % size in body.decode(errors="replace")
        print("%s %s upload %d MiB intact -- %s" % ("ok  " if ok else "FAIL", name, mib, head.splitlines()[0]))
        tls12 += 2 if version == ssl.TLSVersion.TLSv1_2 else 0
        tls13 += 2 if version == ssl.TLSVersion.TLSv1_3 else 0
    ktls = metric(admin, "sluice_tls_ktls_connections_total")
    want = tls12 if expected == "yes" else 0
    print("%s kTLS used for TLS 1.2 only -- sluice_tls_ktls_connections_total %d, want %d (kTLS %s)"
          % ("ok  " if ktls == want else "FAIL", ktls, want, expected))
    own = metric(admin, 'sluice_tls_record_layer_total{layer="sluice"}')
    print("%s TLS 1.3 records were the agent's own -- sluice_tls_record_layer_total{layer=\"sluice\"} %d, want %d"
          % ("ok  " if own == tls13 else "FAIL", own, tls13))
    stat = tls_stat()
    if expected == "yes":
        ok = stat.get("TlsTxSw", 0) >= tls12 and stat.get("TlsRxSw", 0) >= tls12
        print("%s the kernel did the record layer -- /proc/net/tls_stat %s" % ("ok  " if ok else "FAIL", stat))
    else:
        print("ok   no kernel TLS work expected -- /proc/net/tls_stat %s" % (stat or "absent"))


if __name__ == "__main__":
    main()
