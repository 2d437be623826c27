#!/usr/bin/env python3
"""Writes the HTTP/1.1 test corpus: tests/corpus/malformed/*.http (each must be rejected),
tests/corpus/valid/*.http (each must be accepted) and malformed/README.md.

The files are raw bytes as sent on the wire (real CRLF, NUL, high bytes), so they are generated
here instead of being edited by hand. README.md is read back by tests/unit/http/corpus_test.cpp:
its `expected` column is the ParseError name our parser must report (for chunked-body cases the
ChunkedDecoder's). Re-run after editing: python3 tests/corpus/make_corpus.py
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = b"Host: example.com\r\n"


def req(head_lines, body=b"", method=b"POST", target=b"/", version=b"HTTP/1.1", host=True):
    """A request with the given extra header lines (bytes, each without CRLF)."""
    out = method + b" " + target + b" " + version + b"\r\n"
    if host:
        out += HOST
    for line in head_lines:
        out += line + b"\r\n"
    return out + b"\r\n" + body


def chunked(body):
    return req([b"Transfer-Encoding: chunked"], body)


MALFORMED = [
    # --- CL/TE disagreement ---------------------------------------------------------------------
    ("cl-te", "content_length_with_transfer_encoding",
     "CL.TE: a front end honouring Content-Length forwards `G` as the start of the next request",
     req([b"Content-Length: 6", b"Transfer-Encoding: chunked"], b"0\r\n\r\nG")),
    ("te-cl", "content_length_with_transfer_encoding",
     "TE.CL: a back end honouring Content-Length treats the chunk data as a new request",
     req([b"Transfer-Encoding: chunked", b"Content-Length: 3"],
         b"8\r\nSMUGGLED\r\n0\r\n\r\n")),
    ("te-xchunked", "bad_transfer_encoding",
     "TE.TE obfuscation: `xchunked` is unknown; a substring match would take it as chunked",
     req([b"Transfer-Encoding: xchunked", b"Content-Length: 4"], b"0\r\n\r\n")),
    ("te-space-before-colon", "bad_header_name",
     "TE.TE obfuscation: `Transfer-Encoding : chunked` (whitespace before the colon)",
     req([b"Transfer-Encoding : chunked", b"Content-Length: 4"], b"0\r\n\r\n")),
    ("te-chunked-identity", "bad_transfer_encoding",
     "TE.TE obfuscation: chunked is not the final coding (`chunked, identity`)",
     req([b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n")),
    ("te-obs-fold-continuation", "obs_fold",
     "TE.TE obfuscation: a folded continuation line appends `, identity` to Transfer-Encoding",
     req([b"Transfer-Encoding: chunked", b" , identity"], b"0\r\n\r\n")),
    ("te-hidden-in-fold", "obs_fold",
     "TE.TE obfuscation: Transfer-Encoding hidden in a folded line of another field",
     req([b"X-Ignore: x", b" Transfer-Encoding: chunked", b"Content-Length: 4"], b"0\r\n\r\n")),
    ("te-empty-then-fold", "bad_transfer_encoding",
     "TE.TE obfuscation: empty Transfer-Encoding folded onto `chunked` on the next line "
     "(refused as an empty coding before the fold is read)",
     req([b"Transfer-Encoding:", b" chunked"], b"0\r\n\r\n")),
    ("te-duplicate", "bad_transfer_encoding",
     "TE.TE: two Transfer-Encoding fields; implementations disagree on which one wins",
     req([b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"], b"0\r\n\r\n")),
    ("te-chunked-twice", "bad_transfer_encoding",
     "TE.TE: `chunked, chunked` applies chunked twice",
     req([b"Transfer-Encoding: chunked, chunked"], b"0\r\n\r\n")),
    ("te-in-http10", "bad_transfer_encoding",
     "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: framing is faulty)",
     req([b"Transfer-Encoding: chunked"], b"0\r\n\r\n", version=b"HTTP/1.0")),
    ("te-gzip-chunked", "bad_transfer_encoding",
     "A request coding other than chunked (`gzip, chunked`): we forward raw framing only",
     req([b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n")),
    ("te-vertical-tab", "bad_header_value",
     "TE.TE obfuscation: vertical tab before `chunked` (some parsers treat it as whitespace)",
     req([b"Transfer-Encoding:\x0bchunked", b"Content-Length: 4"], b"0\r\n\r\n")),
    ("te-quoted", "bad_transfer_encoding",
     "TE.TE obfuscation: quoted `\"chunked\"`",
     req([b'Transfer-Encoding: "chunked"', b"Content-Length: 4"], b"0\r\n\r\n")),
    ("te-nul-suffix", "bad_header_value",
     "TE.TE obfuscation: NUL after `chunked` (C-string parsers stop at the NUL)",
     req([b"Transfer-Encoding: chunked\x00", b"Content-Length: 4"], b"0\r\n\r\n")),
    ("te-chunked-with-param", "bad_transfer_encoding",
     "TE.TE obfuscation: `chunked;q=1.0` (chunked takes no parameters)",
     req([b"Transfer-Encoding: chunked;q=1.0"], b"0\r\n\r\n")),
    # --- Content-Length ---------------------------------------------------------------------------
    ("cl-duplicate-equal", "conflicting_content_length",
     "Two equal Content-Length fields (we refuse even equal repeats)",
     req([b"Content-Length: 5", b"Content-Length: 5"], b"hello")),
    ("cl-conflicting", "conflicting_content_length",
     "CL.CL: two different Content-Length values; first-wins and last-wins parsers disagree",
     req([b"Content-Length: 5", b"Content-Length: 11"], b"helloGET / ")),
    ("cl-plus-sign", "bad_content_length",
     "Content-Length `+5` (accepted by strtol-style parsers)",
     req([b"Content-Length: +5"], b"hello")),
    ("cl-negative", "bad_content_length", "Content-Length `-1`",
     req([b"Content-Length: -1"], b"hello")),
    ("cl-hex", "bad_content_length", "Content-Length `0x10` (base-prefix parsing)",
     req([b"Content-Length: 0x10"], b"0123456789abcdef")),
    ("cl-inner-space", "bad_content_length",
     "Content-Length ` 5 5` (a parser stopping at the space reads 5)",
     req([b"Content-Length:  5 5"], b"hello")),
    ("cl-overflow", "bad_content_length",
     "Content-Length 2^64+5, which wraps to 5 in an unchecked 64-bit parser",
     req([b"Content-Length: 18446744073709551621"], b"hello")),
    ("cl-comma-list", "bad_content_length",
     "Content-Length as a list `5, 5` (RFC 9112 lets recipients collapse it; we refuse)",
     req([b"Content-Length: 5, 5"], b"hello")),
    ("cl-empty", "bad_content_length", "Empty Content-Length value",
     req([b"Content-Length:"], b"hello")),
    ("cl-space-before-colon", "bad_header_name",
     "`Content-Length : 5`: a parser that ignores the field and one that trims disagree",
     req([b"Content-Length : 5"], b"hello")),
    ("cl-tab-before-colon", "bad_header_name", "`Content-Length\\t: 5`",
     req([b"Content-Length\t: 5"], b"hello")),
    # --- chunked body -----------------------------------------------------------------------------
    ("chunk-size-0x", "bad_chunk_size", "Chunk size with a `0x` prefix",
     chunked(b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-space-semicolon", "bad_chunk_extension",
     "Chunk line `5 ;`: whitespace then an extension with no name",
     chunked(b"5 ;\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-trailing-space", "bad_chunk_size",
     "Chunk line `5 ` with trailing whitespace and no extension",
     chunked(b"5 \r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-negative", "bad_chunk_size", "Negative chunk size `-5`",
     chunked(b"-5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-overflow", "bad_chunk_size",
     "17 hex digits: 0x10000000000000005 wraps to 5 in an unchecked 64-bit parser",
     chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-17-digits-zero-padded", "bad_chunk_size",
     "Zero-padded chunk size longer than 16 digits (parsers cap digits differently)",
     chunked(b"00000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk-missing-crlf-after-data", "bad_chunk_data",
     "Chunk data not followed by CRLF (`helloXX`); lenient parsers skip to the next line",
     chunked(b"5\r\nhelloXX\r\n0\r\n\r\n")),
    ("chunk-data-shorter-than-size", "bad_chunk_data",
     "Declared size larger than the data before the next size line",
     chunked(b"5\r\nhel\r\n0\r\n\r\n")),
    ("chunk-data-bare-lf", "bad_chunk_data",
     "Chunk data terminated by a bare LF (TERM.SPILL style disagreement)",
     chunked(b"5\r\nhello\n0\r\n\r\n")),
    ("chunk-ext-bare-lf", "bare_cr",
     "Chunk extension terminated by a bare LF (EXT.TERM: some parsers end the line there)",
     chunked(b"5;ext\nhello\r\n0\r\n\r\n")),
    ("chunk-size-bare-lf", "bare_cr", "Chunk lines terminated by bare LF",
     chunked(b"5\nhello\n0\n\n")),
    ("chunk-ext-quoted-crlf", "bad_chunk_extension",
     "CRLF inside a quoted chunk-ext value: quote-aware and line-based parsers split differently",
     chunked(b'5;a="x\r\n0\r\n\r\n"\r\nhello\r\n0\r\n\r\n')),
    ("chunk-bad-trailer", "bad_trailer",
     "Last chunk followed by a garbage trailer line without a colon",
     chunked(b"0\r\nX\r\n\r\n")),
    ("chunk-trailer-content-length", "bad_trailer",
     "Content-Length in the trailer section (would reframe if merged into the head)",
     chunked(b"0\r\nContent-Length: 50\r\n\r\n")),
    ("chunk-trailer-obs-fold", "bad_trailer", "Folded trailer line",
     chunked(b"0\r\nX-Sum: a\r\n b\r\n\r\n")),
    # --- line endings and field syntax ------------------------------------------------------------
    ("bare-cr-in-header", "bare_cr", "Bare CR inside a field value",
     req([b"X-Foo: a\rb"], method=b"GET")),
    ("bare-lf-line-endings", "bare_cr", "Every line ends in a bare LF",
     b"GET / HTTP/1.1\nHost: example.com\n\n"),
    ("bare-lf-hides-te", "bare_cr",
     "A bare LF inside a field starts a Transfer-Encoding line only LF-splitting parsers see",
     req([b"X-Foo: a\nTransfer-Encoding: chunked", b"Content-Length: 4"], b"0\r\n\r\n")),
    ("nul-in-header-value", "bad_header_value", "NUL byte in a field value",
     req([b"X-Foo: a\x00b"], method=b"GET")),
    ("del-in-header-value", "bad_header_value", "DEL byte in a field value",
     req([b"X-Foo: a\x7fb"], method=b"GET")),
    ("obs-fold", "obs_fold", "Obsolete line folding of an ordinary field",
     req([b"X-Foo: a", b"\tb"], method=b"GET")),
    ("leading-space-first-header", "obs_fold",
     "Whitespace-prefixed first field line (RFC 9112 §2.2)",
     b"GET / HTTP/1.1\r\n Host: example.com\r\n\r\n"),
    ("header-name-non-token", "bad_header_name", "Field name with a non-token byte (`Foo@Bar`)",
     req([b"Foo@Bar: x"], method=b"GET")),
    ("empty-header-name", "bad_header_name", "Field line with an empty name (`: x`)",
     req([b": x"], method=b"GET")),
    # --- Host -------------------------------------------------------------------------------------
    ("missing-host", "missing_host", "HTTP/1.1 request without Host",
     req([], method=b"GET", host=False)),
    ("two-hosts", "multiple_host", "Two Host fields: routing and the back end may pick differently",
     req([b"Host: evil.example"], method=b"GET")),
    ("host-with-space", "bad_host", "Host `a b`",
     req([b"Host: a b"], method=b"GET", host=False)),
    ("host-bad-port", "bad_host", "Host with port 99999",
     req([b"Host: example.com:99999"], method=b"GET", host=False)),
    ("host-userinfo", "bad_host", "Host with userinfo (`attacker@example.com`)",
     req([b"Host: attacker@example.com"], method=b"GET", host=False)),
    ("host-empty", "bad_host", "Empty Host value",
     req([b"Host:"], method=b"GET", host=False)),
    # --- request line -----------------------------------------------------------------------------
    ("http-1-2", "bad_version", "Version HTTP/1.2",
     req([], method=b"GET", version=b"HTTP/1.2")),
    ("http-2-0-request-line", "bad_version", "An HTTP/1-style request line claiming HTTP/2.0",
     req([], method=b"GET", version=b"HTTP/2.0")),
    ("lowercase-http-version", "bad_version", "Lower-case `http/1.1`",
     req([], method=b"GET", version=b"http/1.1")),
    ("double-space-request-line", "bad_request_line", "Two spaces between method and target",
     b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("tab-in-request-line", "bad_request_line", "Tab instead of space in the request line",
     b"GET\t/ HTTP/1.1\r\n" + HOST + b"\r\n"),
    ("space-after-version", "bad_request_line", "Trailing space after the version",
     b"GET / HTTP/1.1 \r\n" + HOST + b"\r\n"),
    ("http09-request", "bad_request_line", "HTTP/0.9 style request line without a version",
     b"GET /\r\n\r\n"),
    ("too-many-leading-crlf", "bad_request_line", "Five empty lines before the request line",
     b"\r\n" * 5 + req([], method=b"GET")),
    ("non-token-method", "bad_method", "Method with a non-token byte (`G@T`)",
     req([], method=b"G@T")),
    ("target-without-slash", "bad_target", "Origin-form target without the leading slash",
     req([], method=b"GET", target=b"foo")),
    ("raw-space-in-target", "bad_version",
     "Unencoded space in the target (splits it; the rest is read as the version)",
     req([], method=b"GET", target=b"/a b")),
    ("del-in-target", "bad_target", "DEL byte in the target",
     req([], method=b"GET", target=b"/a\x7f")),
    ("high-byte-in-target", "bad_target", "Byte 0x80 in the target",
     req([], method=b"GET", target=b"/a\x80")),
    ("fragment-in-target", "bad_target", "Fragment `#` in the target (never sent by clients)",
     req([], method=b"GET", target=b"/public#/../admin")),
    ("absolute-form-userinfo", "bad_target", "Absolute-form target with userinfo",
     req([], method=b"GET", target=b"http://user@evil.example/")),
    ("asterisk-with-get", "bad_target", "`*` target with a method other than OPTIONS",
     req([], method=b"GET", target=b"*")),
    ("connect-without-port", "bad_target", "CONNECT authority-form without a port",
     req([], method=b"CONNECT", target=b"example.com")),
    # --- limits -----------------------------------------------------------------------------------
    ("request-line-too-long", "request_line_too_long", "Request line over 8 KiB (414)",
     req([], method=b"GET", target=b"/" + b"a" * 9000)),
    ("head-too-large", "head_too_large", "Header section over 32 KiB in 40 fields (431)",
     req([b"X-Pad-%02d: %s" % (i, b"p" * 1000) for i in range(40)], method=b"GET")),
    ("too-many-headers", "too_many_headers", "101 header fields (431)",
     req([b"X-H%d: v" % i for i in range(100)], method=b"GET")),
]

VALID = [
    ("simple-get", req([b"Accept: */*"], method=b"GET")),
    ("leading-crlf", b"\r\n\r\n" + req([], method=b"GET")),
    ("tabs-around-values",
     b"POST /t HTTP/1.1\r\nHost:\texample.com\t\r\nX-Tab: \t a \t b \t\r\n"
     b"Transfer-Encoding:\tchunked \r\n\r\n0\r\n\r\n"),
    ("chunk-extensions",
     chunked(b'5;name=value;flag\r\nhello\r\n6 ; q = "a \\" b" ; x\r\n world\r\n0;end\r\n\r\n')),
    ("chunked-trailers",
     req([b"Transfer-Encoding: chunked", b"Trailer: X-Checksum"],
         b"3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nServer-Timing: db;dur=5\r\n\r\n")),
    ("absolute-form",
     req([], method=b"GET", target=b"http://example.com:8080/a/b?c=d&e")),
    ("options-asterisk", req([], method=b"OPTIONS", target=b"*", body=b"")),
    ("connect-authority",
     b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
    ("http10-no-host-keepalive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    ("obs-text-value", req([b"X-Name: Gr\xc3\xbc\xc3\x9fe \xff"], method=b"GET")),
    ("ipv6-host", b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n"),
    ("content-length-leading-zeros", req([b"Content-Length: 0005"], b"hello")),
    ("expect-upgrade",
     req([b"Content-Length: 2", b"Expect: 100-continue", b"Connection: keep-alive, Upgrade",
          b"Upgrade: websocket", b"X-Empty:"], b"hi", method=b"PUT")),
    ("uppercase-chunked-pct-target",
     req([b"Transfer-Encoding: CHUNKED"], b"1\r\nx\r\n0\r\n\r\n",
         target=b"/a/%2e%2E/b%20c?q=%7E&r=|{}")),
]

README_HEAD = """# Malformed and smuggling HTTP/1.1 requests

Each `NNN-name.http` file is one raw request exactly as sent on the wire (real CRLF, NUL and
high bytes). Every one must be rejected: the parser answers 400/414/431 (for chunked-body cases
the head is fine and the ChunkedDecoder fails) and the back end must see nothing. Files are
generated by `../make_corpus.py`; edit that and re-run it rather than editing bytes by hand.

`expected` is the `errorName()` of the ParseError we report; `stage` says where: `head` cases
fail in parseRequestHead, `body` cases have a valid head and fail in the ChunkedDecoder. A proxy
that streams the head upstream before the body is validated lets a back end see the head of a
`body` case (never a smuggled second request). `tests/unit/http/corpus_test.cpp` reads this
table, so every file must have a row and every row a file.

| file | stage | expected | attack |
|---|---|---|---|
"""


def main():
    bad_dir = HERE / "malformed"
    good_dir = HERE / "valid"
    for d in (bad_dir, good_dir):
        d.mkdir(exist_ok=True)
        for old in d.glob("*.http"):
            old.unlink()
    rows = []
    for i, (slug, expected, what, data) in enumerate(MALFORMED, start=1):
        name = "%03d-%s.http" % (i, slug)
        (bad_dir / name).write_bytes(data)
        stage = "body" if slug.startswith("chunk-") else "head"
        rows.append("| `%s` | %s | `%s` | %s |" % (name, stage, expected, what))
    (bad_dir / "README.md").write_text(README_HEAD + "\n".join(rows) + "\n")
    for i, (slug, data) in enumerate(VALID, start=1):
        (good_dir / ("%03d-%s.http" % (i, slug))).write_bytes(data)
    print("%d malformed, %d valid" % (len(MALFORMED), len(VALID)))


if __name__ == "__main__":
    main()
