"""What the edge's direct writes to uvicorn's transport buy: server CPU per write, both ways.

One uvicorn server in this process, configured as `eh_runtime.serve` configures it (httptools,
uvloop), behind the middleware an event stream writes through in production (Starlette's
`ServerErrorMiddleware`, `RequestContextMiddleware`). Each connection gets a real `SseResponse`
whose own `_write` writes the same ~330-byte chunk N times, one write at a time, either

- `direct`: as the edge ships (`sse_edge.http.uvicorn_transport`: straight to the transport while
  the socket keeps up), or
- `asgi-send`: every write through the ASGI `send` chain (the trick off).

A child process reads every connection as fast as it can and discards the bytes. Every write is
one write in both ways (no coalescing, which under CPU contention would differ between runs), so
the server's own CPU time per write (getrusage) compares the two paths themselves; rounds
alternate the two ways. Nothing of NATS is involved.

    .venv/bin/python bench/bench_uvicorn_writes.py   # 200 connections x 1,000 writes, 4 rounds each way
    .venv/bin/python bench/bench_uvicorn_writes.py --connections 1000 --writes 500
"""

import argparse
import asyncio
import logging
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import structlog
import uvicorn
import uvloop
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import Receive, Scope, Send

from eh_contracts.subjects import SubjectFilter
from eh_devtools.nats_server import die_with_parent
from eh_runtime.request_context import RequestContextMiddleware
from sse_edge.http.sse_response import SseResponse
from sse_edge.http.uvicorn_transport import UvicornTransport
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.subscriber import Subscriber

CHUNK = b"id: 1234567\nevent: node_metrics\ndata: " + b"x" * 280 + b"\n\n"

READER = r"""
import socket, sys, selectors
port, count = int(sys.argv[1]), int(sys.argv[2])
selector = selectors.DefaultSelector()
for _ in range(count):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: bench\r\n\r\n")
    sock.setblocking(False)
    selector.register(sock, selectors.EVENT_READ)
print("connected", flush=True)
open_ = count
while open_:
    for key, _ in selector.select():
        try:
            data = key.fileobj.recv(1 << 20)
        except BlockingIOError:
            continue
        if not data or data.endswith(b"0\r\n\r\n"):
            selector.unregister(key.fileobj)
            key.fileobj.close()
            open_ -= 1
"""


class WritingApp:
    """Each request: an `SseResponse` writing `writes` chunks through its own `_write`."""

    def __init__(self, writes: int, direct: bool, connections: int) -> None:
        self.writes = writes
        self.direct = direct
        self.go = asyncio.Event()
        self.started = 0
        self.connections = connections
        self.index = FanoutIndex(1 << 20)
        self.engaged = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        client = Subscriber(SubjectFilter(), 1 << 20, "bench")
        response = SseResponse(
            client,
            self.index,
            opening=b"",
            replay=None,  # type: ignore[arg-type]  # not run: only the writes are measured
            encoding=None,
            shutdown_retry_ms=(1000, 1000),
            on_close=lambda: None,
        )
        await send({"type": "http.response.start", "status": 200, "headers": response.raw_headers})
        transport = UvicornTransport.find(receive)
        if self.direct and transport is not None and transport.engage():
            response._transport = transport
            self.engaged += 1
        self.started += 1
        if self.started == self.connections:
            self.go.set()
        await self.go.wait()
        write = response._write
        for n in range(self.writes):
            await write(send, CHUNK)
            if n % 8 == 7:
                await asyncio.sleep(0)  # let the other connections write, as woken writers do
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def one_run(connections: int, writes: int, direct: bool) -> dict[str, Any]:
    app = WritingApp(writes, direct, connections)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        ServerErrorMiddleware(RequestContextMiddleware(app)),
        log_config=None,
        access_log=False,
        http="httptools",
        loop="none",
        lifespan="off",
        backlog=4096,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn's Server offers no event for it
        await asyncio.sleep(0.01)
    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READER,
        str(port),
        str(connections),
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    await asyncio.wait_for(app.go.wait(), 120)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before, wall_before = usage.ru_utime + usage.ru_stime, time.monotonic()
    await reader.wait()  # it exits when every stream has ended
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    wall = time.monotonic() - wall_before
    server.should_exit = True
    await serving
    sock.close()
    total = connections * writes
    return {"direct": direct, "engaged": app.engaged, "cpu_us_per_write": 1e6 * cpu / total, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    # The request context's access line per stream is not what is measured.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    results: dict[bool, list[float]] = {True: [], False: []}
    for round_no in range(args.rounds):
        for direct in (round_no % 2 == 0, round_no % 2 != 0):
            run = uvloop.run(one_run(args.connections, args.writes, direct))
            results[direct].append(run["cpu_us_per_write"])
            way = "direct   " if direct else "asgi-send"
            print(
                f"round {round_no + 1} {way}: {run['cpu_us_per_write']:.2f} µs server CPU per write, "
                f"{run['engaged']} of {args.connections} streams on the fast path, {run['wall_s']:.1f} s",
                flush=True,
            )
    direct, send = statistics.median(results[True]), statistics.median(results[False])
    print(f"median server CPU per write: direct {direct:.2f} µs, asgi-send {send:.2f} µs")
    print(
        f"ratio asgi-send / direct: {send / direct:.2f}x (rounds: "
        f"{', '.join(f'{s / d:.2f}' for d, s in zip(results[True], results[False], strict=True))})"
    )


if __name__ == "__main__":
    main()
