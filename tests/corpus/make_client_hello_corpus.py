#!/usr/bin/env python3
"""Writes the ClientHello corpus, tests/corpus/client_hello/*.bin, and its manifest expected.tsv.

Two kinds of file:
- captured: the first bytes real clients send. The script listens on 127.0.0.1 (port 0), runs
  `openssl s_client` and `curl` against it with various options and keeps each connection's
  bytes up to the end of the record that completes the ClientHello (the clients then fail the
  handshake, which is expected). These change from run to run (random, key shares).
- crafted: hellos built here for what clients on this machine do not send: GREASE everywhere, a
  post-quantum sized key share, odd record splits, ECH, no extensions, and invalid ones.

expected.tsv is read by tests/unit/tls/client_hello_corpus_test.cpp; its columns are
file, verdict (ok, need_more or an Error name), sni ("-" for none), alpn (comma-separated or
"-"), tls13 and ech (yes/no). For captured files they come from the options the client was run
with, not from parsing the bytes. The fuzz_client_hello smoke test starts from the .bin files.

Debian 12's OpenSSL 3.0 has no post-quantum group; its largest key share is ffdhe8192 (1,024
bytes), captured below, and the 1,216-byte X25519MLKEM768 share is crafted.

Re-run after editing (needs openssl and curl): python3 tests/corpus/make_client_hello_corpus.py
"""

import random
import socket
import struct
import subprocess
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent / "client_hello"
TIMEOUT = 10

# --- capture ---------------------------------------------------------------------------------


def hello_end(data):
    """Length of the prefix of `data` that ends with the record completing the first handshake
    message, or None while incomplete."""
    at, handshake = 0, b""
    while at + 5 <= len(data):
        length = struct.unpack("!H", data[at + 3:at + 5])[0]
        if at + 5 + length > len(data):
            return None
        handshake += data[at + 5:at + 5 + length]
        at += 5 + length
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            return at
    return None


def serve_once(listener, result):
    conn, _ = listener.accept()
    conn.settimeout(TIMEOUT)
    data = b""
    with conn:
        while hello_end(data) is None:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    end = hello_end(data)
    result.append(data[:end] if end else None)


def capture(command_for_port):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        result = []
        server = threading.Thread(target=serve_once, args=(listener, result))
        server.start()
        subprocess.run(command_for_port(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=False)
        server.join()
    if not result or result[0] is None:
        raise SystemExit(f"no whole ClientHello from {command_for_port(0)}")
    return result[0]


def s_client(*args):
    return lambda port: ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args]


def curl(host, *args):
    return lambda port: ["curl", "-sk", "--max-time", str(TIMEOUT), "--resolve",
                         f"{host}:{port}:127.0.0.1", *args, f"https://{host}:{port}/"]


# (name, command, sni, alpn, tls13, ech)
CAPTURED = [
    ("openssl-default", s_client("-servername", "www.example.com"), "www.example.com", "-", True),
    ("openssl-tls12", s_client("-tls1_2", "-servername", "legacy.example.com"),
     "legacy.example.com", "-", False),
    ("openssl-tls13", s_client("-tls1_3", "-servername", "tls13.example.com"),
     "tls13.example.com", "-", True),
    ("openssl-alpn", s_client("-alpn", "h2,http/1.1", "-servername", "api.example.com"),
     "api.example.com", "h2,http/1.1", True),
    ("openssl-no-sni", s_client("-noservername"), "-", "-", True),
    ("openssl-mixed-case", s_client("-servername", "Shop.Example.COM"), "shop.example.com", "-",
     True),
    ("openssl-trailing-dot", s_client("-servername", "dot.example.com."), "dot.example.com", "-",
     True),
    ("openssl-ffdhe8192", s_client("-tls1_3", "-groups", "ffdhe8192", "-servername",
                                   "big.example.com"), "big.example.com", "-", True),
    ("openssl-many-groups", s_client("-groups", "x448:secp521r1:x25519:ffdhe2048", "-servername",
                                     "groups.example.com"), "groups.example.com", "-", True),
    ("curl-default", curl("curl.example.com"), "curl.example.com", "h2,http/1.1", True),
    ("curl-http11", curl("h1.example.com", "--http1.1"), "h1.example.com", "http/1.1", True),
    ("curl-tls12", curl("old.example.com", "--tlsv1.2", "--tls-max", "1.2", "--http1.1"),
     "old.example.com", "http/1.1", False),
]

# --- crafted ---------------------------------------------------------------------------------

RNG = random.Random(8701)


def u16(n):
    return struct.pack("!H", n)


def vec8(b):
    return bytes([len(b)]) + b


def vec16(b):
    return u16(len(b)) + b


def ext(kind, data=b""):
    return u16(kind) + vec16(data)


def sni(name):
    return ext(0, vec16(b"\x00" + vec16(name)))


def alpn(*names):
    return ext(16, vec16(b"".join(vec8(n) for n in names)))


def versions(*vs):
    return ext(43, vec8(b"".join(u16(v) for v in vs)))


def groups(*gs):
    return ext(10, vec16(b"".join(u16(g) for g in gs)))


def key_share(*shares):
    return ext(51, vec16(b"".join(u16(g) + vec16(bytes(RNG.randrange(256) for _ in range(n)))
                                  for g, n in shares)))


def hello(extensions, suites=(0x1301, 0x1302, 0xc02f), version=0x0303, handshake_type=1):
    body = (u16(version) + bytes(RNG.randrange(256) for _ in range(32)) +
            vec8(bytes(RNG.randrange(256) for _ in range(32))) +
            vec16(b"".join(u16(s) for s in suites)) + vec8(b"\x00"))
    if extensions is not None:
        body += vec16(b"".join(extensions))
    return bytes([handshake_type]) + len(body).to_bytes(3, "big") + body


def records(message, sizes=(), record_type=22, version=0x0301):
    """`message` in records of the given payload sizes, the rest in one last record."""
    out, at = b"", 0
    for size in list(sizes) + [len(message)]:
        if at >= len(message):
            break
        part = message[at:at + size]
        out += bytes([record_type]) + u16(version) + vec16(part)
        at += len(part)
    return out


BASIC = [sni(b"crafted.example.com"), versions(0x0304, 0x0303), groups(0x001d),
         key_share((0x001d, 32))]
GREASE = [ext(0x0a0a), sni(b"grease.example.com"), groups(0x2a2a, 0x001d),
          key_share((0x2a2a, 1), (0x001d, 32)), versions(0x3a3a, 0x0304, 0x0303),
          alpn(b"\x4a\x4a", b"h2"), ext(0xfafa, b"\x00")]
PQ = [sni(b"pq.example.com"), versions(0x0304), groups(0x11ec, 0x001d),
      key_share((0x11ec, 1216), (0x001d, 32)), alpn(b"h2", b"http/1.1"), ext(21, bytes(200))]
PQ_HELLO = hello(PQ)

# (name, bytes, verdict, sni, alpn, tls13, ech)
CRAFTED = [
    ("basic", records(hello(BASIC)), "ok", "crafted.example.com", "-", True, False),
    ("no-extensions", records(hello(None, suites=(0x002f,))), "ok", "-", "-", False, False),
    ("grease", records(hello(GREASE, suites=(0x1a1a, 0x1301, 0xc02f))), "ok",
     "grease.example.com", "JJ,h2", True, False),  # 0x4a4a is "JJ"
    ("pq-two-records", records(PQ_HELLO, (1000,)), "ok", "pq.example.com", "h2,http/1.1", True,
     False),
    ("pq-one-record", records(PQ_HELLO), "ok", "pq.example.com", "h2,http/1.1", True, False),
    ("split-in-header", records(hello(BASIC), (2,)), "ok", "crafted.example.com", "-", True,
     False),
    ("tiny-records", records(hello(BASIC), [7] * 40), "ok", "crafted.example.com", "-", True,
     False),
    ("ech", records(hello([sni(b"public.example.com"), versions(0x0304),
                           ext(0xfe0d, b"\x00" + bytes(40))])),
     "ok", "public.example.com", "-", True, True),
    ("trailing-bytes", records(hello(BASIC)) + b"\x17\x03\x03\x00\x01\x00", "ok",
     "crafted.example.com", "-", True, False),
    ("http-request", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "not_handshake", "-", "-", False, False),
    ("alert-after-first-record", records(hello(BASIC), (10,))[:15] + b"\x15\x03\x03\x00\x02\x02\x28",
     "unexpected_record_type", "-", "-", False, False),
    ("server-hello", records(hello(BASIC, handshake_type=2)), "not_client_hello", "-", "-", False,
     False),
    ("duplicate-extension", records(hello(BASIC + [ext(0xfe0d)] * 2)), "duplicate_extension", "-",
     "-", False, False),
    ("bad-sni-underscore", records(hello([sni(b"bad_name.example.com")])), "bad_sni", "-", "-",
     False, False),
    ("record-too-long", b"\x16\x03\x01\x40\x01" + hello(BASIC), "record_too_long", "-", "-", False,
     False),
    ("truncated", records(hello(BASIC))[:60], "need_more", "-", "-", False, False),
]


def main():
    HERE.mkdir(exist_ok=True)
    for old in HERE.glob("*.bin"):
        old.unlink()
    rows = []
    for name, command, host, protocols, tls13 in CAPTURED:
        data = capture(command)
        (HERE / f"captured-{name}.bin").write_bytes(data)
        rows.append((f"captured-{name}.bin", "ok", host, protocols, tls13, False))
    for name, data, verdict, host, protocols, tls13, ech in CRAFTED:
        (HERE / f"crafted-{name}.bin").write_bytes(data)
        rows.append((f"crafted-{name}.bin", verdict, host, protocols, tls13, ech))
    yes = {True: "yes", False: "no"}
    lines = ["# file\tverdict\tsni\talpn\ttls13\tech (written by make_client_hello_corpus.py)"]
    lines += [f"{f}\t{v}\t{s}\t{a}\t{yes[t]}\t{yes[e]}" for f, v, s, a, t, e in rows]
    (HERE / "expected.tsv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
