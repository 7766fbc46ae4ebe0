"""SSE load client for bench_fanout.py: many raw-socket SSE connections in one process.

Run by the benchmark as its own process (`python bench/sse_load.py <spec.json>`), several at
once when the connection count needs it. Nothing per event is parsed in Python: received bytes
are counted and searched with `bytes.count` for the frame marker `\\nid: ` (a frame starts a
line with `id: `; chunked transfer encoding puts `\\r\\n<size>\\r\\n` before a chunk, so the
marker survives it), with a few bytes carried over so that a marker split across two reads is
still counted once. In latency mode a regex over each read picks out the publish timestamps
(`"id":"t<CLOCK_MONOTONIC ns>"`) that the bench's publisher writes into the envelope, and every
timestamp in a read gets that read's receive time: CLOCK_MONOTONIC is one clock for every
process on Linux.

Protocol with the parent, one JSON object per line on stdout, commands on stdin:
- after connecting: `{"connected": n, "failed": k, "errors": [...]}`
- stdin `start`: counters are zeroed (the measurement window begins)
- stdin `stop`: `{"seconds": .., "events": .., "bytes": .., "heartbeats": .., "closed": ..}`, and
  in latency mode the latencies (ns, int64) are written to the spec's `latency_file`; then exit.

Spec keys: host, port, paths (one per connection), latency (bool), latency_file, stall_paths
(extra connections that send their request and never read, with a 4 KiB SO_RCVBUF),
connect_concurrency (default 200 connections opening at once).
"""

import asyncio
import json
import re
import socket
import sys
import time
from array import array
from typing import Any

import uvloop

MARKER = b"\nid: "
HEARTBEAT = b": heartbeat"
CARRY = 16
STAMP_RE = re.compile(rb'"id":"t(\d+)"')
READY_MARK = b"stream.ready"


class Totals:
    def __init__(self, latency: bool) -> None:
        self.events = 0
        self.bytes = 0
        self.heartbeats = 0
        self.closed = 0
        self.latency = latency
        self.latencies = array("q")


class SseProtocol(asyncio.Protocol):
    """One SSE connection: waits for the stream to open, then counts frames in raw bytes."""

    def __init__(self, totals: Totals, request: bytes, opened: asyncio.Future[None]) -> None:
        self.totals = totals
        self.request = request
        self.opened = opened
        self.head = b""
        self.tail = b""
        self.streaming = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        totals = self.totals
        if not self.streaming:
            self.head += data
            if not self.head.startswith(b"HTTP/1.1 200"):
                if len(self.head) >= 12 or b"\r\n" in self.head:
                    self._fail(self.head.split(b"\r\n", 1)[0].decode(errors="replace"))
                return
            if READY_MARK not in self.head:
                return
            self.streaming = True
            data, self.head = self.head, b""
            if not self.opened.done():
                self.opened.set_result(None)
        totals.bytes += len(data)
        joined = self.tail + data
        totals.events += joined.count(MARKER) - self.tail.count(MARKER)
        if HEARTBEAT in joined:
            totals.heartbeats += joined.count(HEARTBEAT) - self.tail.count(HEARTBEAT)
        if totals.latency:
            now = time.monotonic_ns()
            lat = totals.latencies
            for stamp in STAMP_RE.findall(data):
                lat.append(now - int(stamp))
        self.tail = joined[-CARRY:]

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.streaming:
            self.totals.closed += 1
        elif not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the stream opened: {exc!r}"))


def request_bytes(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()


async def open_stream(
    loop: asyncio.AbstractEventLoop, spec: dict[str, Any], path: str, totals: Totals
) -> asyncio.Transport:
    opened: asyncio.Future[None] = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: SseProtocol(totals, request_bytes(path), opened), spec["host"], spec["port"]
    )
    try:
        async with asyncio.timeout(60):
            await opened
    except BaseException:
        transport.close()
        raise
    return transport


def open_stalled(spec: dict[str, Any], path: str) -> socket.socket:
    """A client that sends its request and never reads: a small receive buffer that fills at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((spec["host"], spec["port"]))
    sock.sendall(request_bytes(path))
    return sock


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def save_latencies(path: str, values: array) -> None:
    with open(path, "wb") as out:
        values.tofile(out)


async def main(spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    totals = Totals(bool(spec.get("latency")))
    gate = asyncio.Semaphore(int(spec.get("connect_concurrency", 200)))
    transports: list[asyncio.Transport] = []
    errors: dict[str, int] = {}

    async def one(path: str) -> None:
        async with gate:
            try:
                transports.append(await open_stream(loop, spec, path, totals))
            except (OSError, TimeoutError) as error:
                key = str(error) or type(error).__name__
                errors[key] = errors.get(key, 0) + 1

    await asyncio.gather(*(one(path) for path in spec["paths"]))
    stalled = [open_stalled(spec, path) for path in spec.get("stall_paths", [])]
    emit({"connected": len(transports), "failed": sum(errors.values()), "errors": errors})

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    started = time.monotonic()
    while True:
        line = (await reader.readline()).strip()
        if line == b"start":
            totals.events = totals.bytes = totals.heartbeats = totals.closed = 0
            totals.latencies = array("q")
            started = time.monotonic()
        elif line in (b"stop", b""):
            seconds = time.monotonic() - started
            if totals.latency and spec.get("latency_file"):
                save_latencies(spec["latency_file"], totals.latencies)
            stalled_state = [stall_state(sock) for sock in stalled]
            emit(
                {
                    "seconds": seconds,
                    "events": totals.events,
                    "bytes": totals.bytes,
                    "heartbeats": totals.heartbeats,
                    "closed": totals.closed,
                    "samples": len(totals.latencies),
                    "stalled": stalled_state,
                }
            )
            break
    for transport in transports:
        transport.close()
    for sock in stalled:
        sock.close()


def stall_state(sock: socket.socket) -> str:
    """What became of a stalled client: still open, or ended by the server (and how)."""
    sock.setblocking(False)
    received = b""
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return "closed by the server" + (
                    " after stream.overflow" if b"stream.overflow" in received else ""
                )
            received = (received + chunk)[-4096:]
    except BlockingIOError:
        return "still open"
    except OSError as error:
        return f"reset ({error})"


if __name__ == "__main__":
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    uvloop.run(main(spec))
