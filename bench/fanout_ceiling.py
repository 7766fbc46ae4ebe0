"""The bare ceiling of bench_fanout.py: the fastest SSE fan-out this Python can do, no NATS at all.

A raw uvloop server (asyncio.Protocol, no ASGI, no HTTP framework) with an in-process producer
at a fixed rate: every 2 ms tick it makes the events due since the last one (the same ~300-byte
`node_metrics` envelopes, round-robin over `resources` resource ids), builds each frame once, joins
the frames each index bucket wants (everything / by type / by resource / by pair, as the edge's
index) into one chunk of the chunked transfer encoding, and hands that same bytes object to every
client of the bucket: one `transport.write` per client per wake-up. A client whose transport is
paused (its socket and a 4 MiB buffer are full) misses frames until it drains: the ceiling never
slows down for anyone. Same URL shape and frames as the edge (`retry:`, `stream.ready`,
`id:/event:/data:`), so the same load client measures it.

    python bench/fanout_ceiling.py --port 8002 --rate 1000 --resources 100
"""

import argparse
import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import uvloop

PAYLOAD = (
    b'{"id":"t%d","event":"node_metrics","timestamp":"2026-11-29T06:00:00Z","resource_id":"node-%d",'
    b'"data":{"cpu":{"usage":45.5,"cores":8,"temperature":65},"memory":{"total":32768,"used":16384,'
    b'"free":16384},"disk":{"total":512000,"used":256000,"free":256000},"network":{"in_bytes":1024000,'
    b'"out_bytes":512000,"connections":100}}}'
)
EVENT_TYPE = "node_metrics"
TICK = 0.002
HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
    b"x-accel-buffering: no\r\ntransfer-encoding: chunked\r\n\r\n"
)
OPENING = b'retry: 3000\n\nevent: stream.ready\ndata: {"ceiling":true}\n\n'


def chunk(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


class Index:
    """Clients by what they filter on; the same four kinds of bucket as the edge's index."""

    def __init__(self) -> None:
        self.everything: set[Client] = set()
        self.by_type: dict[str, set[Client]] = {}
        self.by_resource: dict[str, set[Client]] = {}
        self.by_pair: dict[tuple[str, str], set[Client]] = {}

    def buckets(self, client: "Client") -> list[set["Client"]]:
        if client.types and client.resources:
            return [self.by_pair.setdefault((t, r), set()) for t in client.types for r in client.resources]
        if client.types:
            return [self.by_type.setdefault(t, set()) for t in client.types]
        if client.resources:
            return [self.by_resource.setdefault(r, set()) for r in client.resources]
        return [self.everything]


class Client(asyncio.Protocol):
    def __init__(self, index: Index) -> None:
        self.index = index
        self.request = b""
        self.transport: asyncio.Transport | None = None
        self.types: list[str] = []
        self.resources: list[str] = []
        self.paused = False
        self.registered: list[set[Client]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        transport.set_write_buffer_limits(high=4 * 2**20)

    def data_received(self, data: bytes) -> None:
        if self.registered or self.transport is None:
            return
        self.request += data
        if b"\r\n\r\n" not in self.request:
            return
        target = self.request.split(b" ", 2)[1].decode()
        url = urlsplit(target)
        if url.path == "/readyz":
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            self.transport.close()
            return
        if url.path != "/api/v1/events":
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()
            return
        query = parse_qs(url.query)
        self.types = [v for raw in query.get("type", []) for v in raw.split(",") if v]
        self.resources = [v for raw in query.get("resource_id", []) for v in raw.split(",") if v]
        self.transport.write(HEADERS + chunk(OPENING))
        self.registered = self.index.buckets(self)
        for bucket in self.registered:
            bucket.add(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        for bucket in self.registered:
            bucket.discard(self)
        self.transport = None


async def produce(index: Index, rate: float, resources: int) -> None:
    names = [f"node-{r}" for r in range(resources)]
    seq = 0
    started = time.monotonic()
    while True:
        await asyncio.sleep(TICK)
        due = int(rate * (time.monotonic() - started)) - seq
        if due <= 0:
            continue
        stamp = time.monotonic_ns()
        everything: list[bytes] = []
        per_resource: dict[str, list[bytes]] = {}
        for _ in range(due):
            seq += 1
            r = seq % resources
            frame = b"id: %d\nevent: node_metrics\ndata: %s\n\n" % (seq, PAYLOAD % (stamp, r))
            everything.append(frame)
            per_resource.setdefault(names[r], []).append(frame)
        writes: list[tuple[set[Client], bytes]] = []
        if index.everything or index.by_type.get(EVENT_TYPE):
            whole = chunk(b"".join(everything))
            writes.append((index.everything, whole))
            writes.append((index.by_type.get(EVENT_TYPE, set()), whole))
        for name, frames in per_resource.items():
            by_resource = index.by_resource.get(name)
            by_pair = index.by_pair.get((EVENT_TYPE, name))
            if by_resource or by_pair:
                part = chunk(b"".join(frames))
                writes.append((by_resource or set(), part))
                writes.append((by_pair or set(), part))
        for bucket, data in writes:
            for client in bucket:
                transport = client.transport
                if transport is not None and not client.paused:
                    transport.write(data)


async def main(port: int, rate: float, resources: int) -> None:
    index = Index()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(index), "127.0.0.1", port, backlog=4096)
    producer = asyncio.create_task(produce(index, rate, resources))
    async with server:
        await server.serve_forever()
    producer.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--resources", type=int, default=100)
    args = parser.parse_args()
    uvloop.run(main(args.port, args.rate, args.resources))
