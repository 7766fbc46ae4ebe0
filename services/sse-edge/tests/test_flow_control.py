"""Slow and stalled clients, connection limits, shutdown and compression, against a real edge.

A slow client is a bare socket with a small receive buffer that reads only when the test says so;
the edge's accepted sockets get a small send buffer too (`serving(send_buffer_bytes=...)`), so that
a reader that stops reading backs up into the edge after kilobytes instead of megabytes.
"""

import asyncio
import contextlib
import socket
import time
import zlib
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import brotli
import httpx
import psutil
import pytest
import zstandard

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import SseMessage, next_event, read_sse
from sse_edge.app import create_app
from sse_edge.http.stream_encoding import negotiate

pytestmark = pytest.mark.nats

SMALL_SOCKET_BUFFER = 4096


class RawStream:
    """An SSE request on a bare socket that reads only when asked: a slow or stalled client."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""

    @classmethod
    async def open(cls, client: httpx.AsyncClient, params: dict[str, str]) -> "RawStream":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_SOCKET_BUFFER)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", client.base_url.port))
        request = f"GET /api/v1/events?{urlencode(params)} HTTP/1.1\r\nHost: edge\r\n\r\n"
        await loop.sock_sendall(sock, request.encode())
        stream = cls(sock)
        await stream.read_until(b"event: stream.caught_up")
        return stream

    async def read_until(self, marker: bytes, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while marker not in self.received:
                await self._read_more()

    async def read_event(self, seq: int) -> None:
        """Read until the event with id `seq` is whole."""
        marker = b"id: %d\n" % seq
        await self.read_until(marker)
        while self.received.find(b"\n\n", self.received.find(marker)) < 0:
            await self._read_more()

    async def _read_more(self) -> None:
        chunk = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        if not chunk:
            raise EOFError("closed")
        self.received += chunk

    async def read_to_end(self, timeout: float = 20) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while chunk := await loop.sock_recv(self.sock, 65536):
                self.received += chunk

    def messages(self) -> list[SseMessage]:
        """The SSE messages received so far (whole ones), from the chunked HTTP body."""
        _head, _, body = self.received.partition(b"\r\n\r\n")
        text = b""
        while body:
            size_line, _, rest = body.partition(b"\r\n")
            size = int(size_line, 16)
            text += rest[:size]  # the last chunk may be partial: its whole messages count
            body = rest[size + 2 :]
        messages = []
        for block in text.decode().split("\n\n")[:-1]:
            message = SseMessage()
            for line in block.split("\n"):
                name, _, value = line.partition(": ")
                if name == "id":
                    message.id = value
                elif name == "event":
                    message.event = value
                elif name == "data":
                    message.data = value
            messages.append(message)
        return messages

    def held_by_this_process(self) -> bool:
        """Whether a socket of this process (the edge runs in-process) is the other end."""
        port = self.sock.getsockname()[1]
        return any(c.raddr and c.raddr.port == port for c in psutil.Process().net_connections("tcp"))

    def close(self) -> None:
        self.sock.close()


def system_log(n: int) -> dict:
    example = SEED_EXAMPLES["system_log"]
    data = example["data"] | {"message": f"log line {n} " + "x" * 300}
    return example | {"resource_id": "svc-1", "data": data}


def node_metrics(node: str, n: int) -> dict:
    example = SEED_EXAMPLES["node_metrics"]
    return example | {"resource_id": node, "data": example["data"] | {"cpu": {"usage": n % 100, "cores": 8}}}


@contextlib.asynccontextmanager
async def edge_with(nats_url: str, edge_settings, **overrides) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(edge_settings(nats_url, **overrides))
    async with serving(app, send_buffer_bytes=SMALL_SOCKET_BUFFER) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


async def collect_until_caught_up(
    client: httpx.AsyncClient, params: dict, last_event_id: str
) -> list[SseMessage]:
    events = []
    headers = {"Last-Event-ID": last_event_id}
    async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        messages = read_sse(response)
        while (message := await asyncio.wait_for(next_event(messages), 10)).event != "stream.caught_up":
            if message.id is not None:
                events.append(message)
    return events


def metric_value(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


class MetricsDelta:
    """Counters live in the process-wide registry: compare against a reading taken first."""

    def __init__(self, client: httpx.AsyncClient, before: str) -> None:
        self.client = client
        self.before = before

    @classmethod
    async def read(cls, client: httpx.AsyncClient) -> "MetricsDelta":
        return cls(client, (await client.get("/metrics")).text)

    async def grew(self, name: str) -> float:
        after = (await self.client.get("/metrics")).text
        return metric_value(after, name) - metric_value(self.before, name)


async def test_a_slow_client_overflows_with_a_control_event_and_resumes_without_loss(
    nats_url, events_stream, js, edge_settings
):
    params = {"type": "system_log"}
    async with edge_with(nats_url, edge_settings, client_buffer_bytes=16 * 1024, send_timeout=60) as client:
        metrics = await MetricsDelta.read(client)
        slow = await RawStream.open(client, params)
        try:
            stored = [await store_event(js, system_log(n)) for n in range(800)]
            await slow.read_to_end()
        finally:
            slow.close()
        received = slow.messages()
        assert received[-1].event == "stream.overflow"
        before = [int(m.id) for m in received if m.id is not None]
        assert before == stored[: len(before)]
        assert len(before) < len(stored)
        after = await collect_until_caught_up(client, params, str(before[-1]))
        assert before + [int(m.id) for m in after] == stored
        assert await metrics.grew('eventhandler_edge_connections_closed_total{reason="overflow"}') == 1
        assert await metrics.grew("eventhandler_edge_events_overflowed_total") > 0


async def test_a_reader_behind_is_written_by_its_task_then_by_the_fanout_again_without_loss(
    nats_url, events_stream, js, edge_settings
):
    """Live events go to a waiting stream straight from the fan-out while its socket keeps up;
    once the socket is behind, the stream's own task writes (waiting for the socket to drain),
    and when the reader caught up, the fan-out again. Every event once, in order, either way."""
    params = {"type": "system_log"}
    async with edge_with(nats_url, edge_settings, client_buffer_bytes=1 << 20, send_timeout=60) as client:
        reader = await RawStream.open(client, params)
        try:
            metrics = await MetricsDelta.read(client)
            stored = [await store_event(js, system_log(n)) for n in range(300)]  # not reading yet
            await reader.read_event(stored[-1])
            by_fanout = await metrics.grew("eventhandler_edge_writes_from_fanout_total")
            by_task = await metrics.grew("eventhandler_edge_writes_total") - by_fanout
            assert by_fanout > 0, "the fan-out wrote nothing while the socket kept up"
            assert by_task > 0, "nothing waited for the socket: the test did not back it up"
            metrics = await MetricsDelta.read(client)
            stored.append(await store_event(js, system_log(300)))
            await reader.read_event(stored[-1])
            assert await metrics.grew("eventhandler_edge_writes_from_fanout_total") == 1
        finally:
            reader.close()
        assert [int(m.id) for m in reader.messages() if m.id is not None] == stored


async def test_a_slow_client_of_metrics_gets_the_latest_per_resource_and_stays_connected(
    nats_url, events_stream, js, edge_settings
):
    params = {"type": "node_metrics"}
    nodes = ["node-1", "node-2", "node-3"]
    async with edge_with(nats_url, edge_settings, client_buffer_bytes=16 * 1024, send_timeout=60) as client:
        metrics = await MetricsDelta.read(client)
        slow = await RawStream.open(client, params)
        try:
            stored = {node: [] for node in nodes}
            for n in range(300):
                for node in nodes:
                    stored[node].append(await store_event(js, node_metrics(node, n)))
            newest = max(seqs[-1] for seqs in stored.values())
            await asyncio.wait_for(slow.read_event(newest), 10)
        finally:
            slow.close()
        ids = [int(m.id) for m in slow.messages() if m.id is not None]
        assert all(m.event != "stream.overflow" for m in slow.messages())
        assert ids == sorted(ids)
        assert len(ids) < 900  # samples were dropped ...
        for seqs in stored.values():
            assert seqs[-1] in ids  # ... but never a resource's newest
        assert await metrics.grew("eventhandler_edge_events_conflated_total") > 0


async def test_a_stalled_client_is_disconnected_and_does_not_hold_up_the_others(
    nats_url, events_stream, js, edge_settings
):
    async with edge_with(nats_url, edge_settings, send_timeout=0.5) as client:
        metrics = await MetricsDelta.read(client)
        stalled = await RawStream.open(client, {})
        assert stalled.held_by_this_process()
        try:
            async with client.stream("GET", "/api/v1/events") as response:
                messages = read_sse(response)
                assert (await next_event(messages)).event == "stream.ready"
                assert (await next_event(messages)).event == "stream.caught_up"
                started = time.monotonic()
                stored = [await store_event(js, system_log(n)) for n in range(400)]
                for seq in stored:
                    assert int((await asyncio.wait_for(next_event(messages), 5)).id) == seq
                # Every event reached the healthy client while the other one stopped reading.
                assert time.monotonic() - started < 10
                async with asyncio.timeout(5):
                    while len(client.app.state.fanout) > 1:  # type: ignore[attr-defined]
                        await asyncio.sleep(0.05)
            assert (
                await metrics.grew('eventhandler_edge_connections_closed_total{reason="send_timeout"}') == 1
            )
            # The edge let go of the socket, although its reader still reads nothing.
            assert not stalled.held_by_this_process()
        finally:
            stalled.close()


async def test_connection_limits_answer_503_and_429_with_retry_after(nats_url, events_stream, edge_settings):
    async with edge_with(nats_url, edge_settings, max_connections=2, max_connections_per_address=1) as client:
        async with client.stream("GET", "/api/v1/events") as first:
            assert first.status_code == 200
            refused = await client.get("/api/v1/events")
            assert refused.status_code == 429
            assert refused.headers["retry-after"]
            assert "127.0.0.1" in refused.json()["detail"]
        # Closing the first stream gives its place back, once the edge has seen the socket close
        # (its sweeper looks twice a second).
        async with asyncio.timeout(2):
            while len(client.app.state.fanout):  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)
        async with client.stream("GET", "/api/v1/events") as again:
            assert again.status_code == 200
    async with edge_with(nats_url, edge_settings, max_connections=1) as client:
        metrics = await MetricsDelta.read(client)
        async with client.stream("GET", "/api/v1/events") as first:
            assert first.status_code == 200
            refused = await client.get("/api/v1/events")
            assert refused.status_code == 503
            assert refused.headers["retry-after"]
        assert await metrics.grew('eventhandler_edge_connections_rejected_total{reason="edge_full"}') == 1


async def test_a_rejected_request_does_not_keep_its_place(nats_url, events_stream, edge_settings):
    async with edge_with(nats_url, edge_settings, max_connections_per_address=1) as client:
        for _ in range(3):
            assert (await client.get("/api/v1/events", params={"type": "nope"})).status_code == 422
            bad_id = await client.get("/api/v1/events", headers={"Last-Event-ID": "999999"})
            assert bad_id.status_code == 400
        async with client.stream("GET", "/api/v1/events") as response:
            assert response.status_code == 200


async def test_shutdown_reaches_every_client_with_spread_retries_within_the_deadline(
    nats_url, events_stream, edge_settings
):
    app = create_app(edge_settings(nats_url, shutdown_timeout=2, send_timeout=30))
    farewells: list[SseMessage] = []

    async def listen(base_url: httpx.URL) -> None:
        # Its own HTTP client: the one `serving` yields is closed with the server.
        async with (
            httpx.AsyncClient(base_url=base_url) as own,
            own.stream("GET", "/api/v1/events") as response,
        ):
            messages = read_sse(response)
            await next_event(messages)
            with contextlib.suppress(EOFError):
                while True:
                    message = await next_event(messages)
                    if message.event == "stream.shutdown":
                        farewells.append(message)

    started = None
    async with serving(app, send_buffer_bytes=SMALL_SOCKET_BUFFER) as client:
        listeners = [asyncio.create_task(listen(client.base_url)) for _ in range(8)]
        stalled = await RawStream.open(client, {})
        while len(app.state.fanout) < 9:
            await asyncio.sleep(0.02)
        started = time.monotonic()
    # The server is down: within its deadline, although one client never read its farewell.
    assert time.monotonic() - started < 2 + 1.5
    await asyncio.wait_for(asyncio.gather(*listeners), 5)
    stalled.close()
    assert len(farewells) == 8
    retries = {message.json()["retry_ms"] for message in farewells}
    assert len(retries) > 1
    assert all(3000 <= retry <= 10000 for retry in retries)


def decoder(encoding: str):
    """A streaming decoder of one encoding: bytes in, bytes out, as a browser would decode."""
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress
    return brotli.Decompressor().process


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("br", "br"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("br, gzip", "gzip"),
    ],
)
async def test_every_stream_encoding_decodes_to_the_same_events(
    nats_url, events_stream, js, edge_settings, offered, chosen
):
    async with edge_with(nats_url, edge_settings) as client:
        async with (
            client.stream("GET", "/api/v1/events", headers={"Accept-Encoding": offered}) as compressed,
            client.stream("GET", "/api/v1/events", headers={"Accept-Encoding": "identity"}) as plain,
        ):
            assert compressed.headers["content-encoding"] == chosen
            assert "content-encoding" not in plain.headers
            raw = compressed.aiter_raw()
            decode = decoder(chosen)
            unpacked = b""
            plain_lines = plain.aiter_bytes()
            plain_text = b""
            stored = [await store_event(js, system_log(n)) for n in range(20)]
            marker = b"id: %d\n" % stored[-1]
            async with asyncio.timeout(10):
                # Each event arrives decodable at once: the compressor flushes after every write.
                while marker not in unpacked:
                    unpacked += decode(await anext(raw))
                while marker not in plain_text:
                    plain_text += await anext(plain_lines)
            assert (
                unpacked.split(b"event: stream.caught_up")[1]
                == plain_text.split(b"event: stream.caught_up")[1]
            )


def test_the_edges_order_of_preference_picks_among_what_the_client_accepts():
    order = ("zstd", "gzip", "br")
    assert negotiate("gzip, deflate, br, zstd", order) == "zstd"
    assert negotiate("br;q=1.0, gzip;q=0.5", order) == "gzip"
    assert negotiate("zstd;q=0, br", order) == "br"
    assert negotiate("identity", order) is None
    assert negotiate("*", order) == "zstd"
    assert negotiate("*, zstd;q=0", order) == "gzip"
    assert negotiate("gzip;q=nonsense", order) is None
    assert negotiate("", ()) is None


async def test_gzip_can_be_turned_off(nats_url, events_stream, edge_settings):
    async with edge_with(nats_url, edge_settings, gzip=False) as client:
        async with client.stream("GET", "/api/v1/events", headers={"Accept-Encoding": "gzip"}) as response:
            assert "content-encoding" not in response.headers


async def test_the_edge_metrics_are_exposed_with_help(edge):
    text = (await edge.get("/metrics")).text
    for name in (
        "eventhandler_edge_connections",
        "eventhandler_edge_connections_opened_total",
        "eventhandler_edge_connections_closed_total",
        "eventhandler_edge_connections_rejected_total",
        "eventhandler_edge_events_delivered_total",
        "eventhandler_edge_bytes_written_total",
        "eventhandler_edge_events_conflated_total",
        "eventhandler_edge_events_overflowed_total",
        "eventhandler_edge_delivery_lag_seconds",
        "eventhandler_edge_feed_lag_events",
    ):
        assert f"# HELP {name} " in text, name


async def test_the_per_address_limit_counts_the_client_a_trusted_proxy_names(
    nats_url, events_stream, edge_settings
):
    # The test client connects from 127.0.0.1, the default trusted proxy.
    async with edge_with(nats_url, edge_settings, max_connections_per_address=1) as client:
        first = {"X-Forwarded-For": "10.0.0.1"}
        async with (
            client.stream("GET", "/api/v1/events", headers=first) as one,
            client.stream("GET", "/api/v1/events", headers={"X-Forwarded-For": "10.0.0.2"}) as other,
        ):
            assert (one.status_code, other.status_code) == (200, 200)
            refused = await client.get("/api/v1/events", headers=first)
            assert refused.status_code == 429
            assert "10.0.0.1" in refused.json()["detail"]
