#!/usr/bin/env python3
"""Echo backend for Sluice's integration tests and demo.

Answers every request with JSON naming the service (and "pod") that answered and echoing the
method, path, headers and a digest of the body, so tests can assert exactly what crossed the
proxy. Special paths exercise proxy features:

  /status/NNN        reply with status NNN
  /delay/MS          wait MS milliseconds, then reply
  /bytes/N           reply with N bytes of body (Content-Length)
  /chunked/N         reply with N bytes in a chunked body
  /close/N           reply with N bytes delimited by closing the connection (no length)
  /then-close        reply as if keep-alive, then close the connection anyway
  /early-hints       send a 103 interim response before the final one
  /upgrade           answer "Upgrade: echo" or "Upgrade: websocket" with 101 naming the same
                     protocol, then echo raw bytes back (/upgrade/wrong names another one)

With --log FILE every request received is appended as one JSON line (method, path), so a test
can prove that a rejected request never reached the backend. Prints "PORT <n>" on stdout once
listening (use --listen 127.0.0.1:0 to get a free port).
"""

import argparse
import hashlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-backend"
    service = "echo"
    log_file = None
    log_lock = threading.Lock()

    def log_message(self, fmt, *args):  # silence per-request stderr lines
        pass

    def handle_expect_100(self):
        # Sluice answers Expect itself and never forwards it; record it if one arrives anyway.
        return super().handle_expect_100()

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        digest = hashlib.sha256()
        total = 0
        if te.lower() == "chunked":
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError("eof in chunk")
                    digest.update(chunk)
                    total += len(chunk)
                    left -= len(chunk)
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length", "0") or 0)
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    raise ConnectionError("eof in body")
                digest.update(chunk)
                total += len(chunk)
                left -= len(chunk)
        return total, digest.hexdigest()

    def _record(self):
        if self.log_file:
            with self.log_lock:
                with open(self.log_file, "a") as f:
                    f.write(json.dumps({"method": self.command, "path": self.path}) + "\n")

    def _reply(self, status, body, content_type="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        # Recorded once the whole request (body included) arrived: a request cut short by the
        # proxy is not one the backend acted on.
        body_bytes, body_sha = self._read_body()
        self._record()
        path = self.path
        port = self.server.server_address[1]
        echo = {
            "service": self.service,
            "pod": "%s-%d" % (self.service, port),
            "method": self.command,
            "path": path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": body_bytes,
            "body_sha256": body_sha,
        }
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
            if status in (204, 304):
                self.send_response(status)
                self.end_headers()
                return
            self._reply(status, json.dumps(echo).encode())
            return
        if path.startswith("/delay/"):
            time.sleep(int(path.split("/")[2]) / 1000.0)
        elif path.startswith("/bytes/"):
            n = int(path.split("/")[2])
            self._reply(200, b"x" * n, "application/octet-stream")
            return
        elif path.startswith("/chunked/"):
            n = int(path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                left = n
                while left:
                    part = min(left, 7000)
                    self.wfile.write(b"%x\r\n" % part + b"y" * part + b"\r\n")
                    left -= part
                self.wfile.write(b"0\r\n\r\n")
            return
        elif path.startswith("/close/"):
            n = int(path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"z" * n)
            self.close_connection = True
            return
        elif path == "/then-close":
            # Looks reusable (no "Connection: close") but the backend closes right after, as a
            # server whose keep-alive timeout just expired does.
            self._reply(200, json.dumps(echo).encode())
            self.close_connection = True
            return
        elif path == "/early-hints":
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        elif path in ("/upgrade", "/upgrade/wrong") and self.headers.get("Upgrade", "").lower() in (
            "echo", "websocket"
        ):
            asked = self.headers.get("Upgrade").lower()
            self.send_response(101)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", asked if path == "/upgrade" else "h2c")
            self.end_headers()
            self.wfile.flush()
            sock = self.connection
            while True:
                data = sock.recv(65536)
                if not data:
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    break
                sock.sendall(data)
            self.close_connection = True
            return
        self._reply(200, json.dumps(echo).encode())

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="echo", help="service name reported in replies")
    ap.add_argument("--listen", default="127.0.0.1:0", help="ADDR:PORT (port 0: pick one)")
    ap.add_argument("--log", help="append one JSON line per request received to this file")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    Handler.service = args.name
    Handler.log_file = args.log
    server = Server((host or "127.0.0.1", int(port)), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
