#!/usr/bin/env python3
"""Writes the PROXY protocol seed corpus, tests/corpus/proxy_protocol/*.pp: raw bytes as a load
balancer sends them in front of a connection, valid and invalid, v1 and v2. The fuzz_proxy_protocol
smoke test starts from these. Re-run after editing: python3 tests/corpus/make_proxy_corpus.py
"""

import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent / "proxy_protocol"
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def v2(ver_cmd, family, block):
    return SIG + bytes([ver_cmd, family]) + struct.pack("!H", len(block)) + block


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


TCP4 = bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack("!HH", 56324, 443)
TCP6 = (bytes.fromhex("20010db8000000000000000000000001") +
        bytes.fromhex("20010db8000000000000000000000002") + struct.pack("!HH", 12345, 80))

SEEDS = {
    "v1-tcp4": b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" + GET,
    "v1-tcp6": b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n" + GET,
    "v1-unknown": b"PROXY UNKNOWN\r\n" + GET,
    "v1-unknown-longest": b"PROXY UNKNOWN " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 +
                          b"ffff 65535 65535\r\n",
    "v1-double-space": b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
    "v1-bad-port": b"PROXY TCP4 192.0.2.1 198.51.100.2 080 2\r\n",
    "v1-family-mismatch": b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
    "v1-bare-lf": b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
    "v1-too-long": b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n",
    "v2-tcp4": v2(0x21, 0x11, TCP4) + GET,
    "v2-tcp6-tlvs": v2(0x21, 0x21, TCP6 + tlv(0x01, b"h2") + tlv(0x04, b"") +
                       tlv(0x20, b"\x05\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3"))) + GET,
    "v2-local": v2(0x20, 0x00, b""),
    "v2-local-with-block": v2(0x20, 0x11, TCP4),
    "v2-udp": v2(0x21, 0x12, TCP4),
    "v2-unix": v2(0x21, 0x31, b"\x00" * 216),
    "v2-short": v2(0x21, 0x21, TCP4),
    "v2-bad-tlv": v2(0x21, 0x11, TCP4 + b"\x01\x00\x05ab"),
    "v2-version-1": v2(0x11, 0x11, TCP4),
    "v2-too-long": SIG + bytes([0x21, 0x11, 0x20, 0x00]) + TCP4,
    "http": GET,
    "tls-client-hello": bytes.fromhex("160301020001"),
}


def main():
    HERE.mkdir(exist_ok=True)
    for old in HERE.glob("*.pp"):
        old.unlink()
    for i, (name, data) in enumerate(SEEDS.items(), 1):
        (HERE / f"{i:03d}-{name}.pp").write_bytes(data)


if __name__ == "__main__":
    main()
