#!/usr/bin/env python3
"""Holds N idle HTTP/1.1 keep-alive connections to a proxy, for bench/run.sh's idle workload.

  idle_holder.py PORT N READY_FILE [tls]

Each connection sends one `GET /` and reads the whole response (a Content-Length body), then
stays open and silent, as a browser's or a client pool's idle connection does. At most 64
connections are being set up at once, so the proxy's upstream pool stays small and what the
proxy holds afterwards is the cost of idle client connections. When all N are idle it writes the
count of failed ones to READY_FILE, then holds them until SIGTERM. Standard library only.
"""

import asyncio
import signal
import ssl
import sys


def tls_context():
    """For `tls`: any certificate (the bench makes its own), TLS as the proxy negotiates it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def one(port, held, sem, tls):
    async with sem:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls_context() if tls else None)
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        held.append(writer)


async def main(port, n, ready_file, tls=False):
    sem = asyncio.Semaphore(64)
    held = []
    results = await asyncio.gather(*(one(port, held, sem, tls) for _ in range(n)),
                                   return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    with open(ready_file, "w", encoding="utf-8") as f:
        f.write(f"{failed}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for w in held:
        w.close()


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5) or sys.argv[4:] not in ([], ["tls"]):
        sys.exit("usage: idle_holder.py PORT N READY_FILE [tls]")
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:] == ["tls"]))
