"""Reconnection storms: resumes inside the window cost NATS nothing, replays outside it queue for a
bounded number of slots at a bounded start rate, each holding bounded memory, and stay exact."""

import asyncio
import json
import re
import socket
from typing import Any

import pytest
from fastapi import FastAPI

from eh_contracts.envelope import parse_events
from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_VERSION, MSG_ID_HEADER
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.stream import EVENTS_STREAM
from sse_edge.app import create_app
from sse_edge.history.jetstream_history import JetStreamHistory
from sse_edge.live.recent_events import RecentEvents
from sse_edge.metrics import CONSUMERS_CREATED, EVENTS_REREAD, FEED, HISTORY_READS_WAITING, RESUMES

pytestmark = pytest.mark.nats


def event(n: int, resource: str = "node-1", message_bytes: int = 0) -> dict[str, Any]:
    if message_bytes:
        base = SEED_EXAMPLES["system_log"]
        data = base["data"] | {"message": "m" * message_bytes}
        return base | {"resource_id": resource, "id": f"storm-{n}", "data": data}
    return SEED_EXAMPLES["node_metrics"] | {"resource_id": resource, "id": f"storm-{n}"}


async def store_bulk(js, events: list[dict[str, Any]]) -> list[int]:
    """Store events as the collector does (validated, marked), pipelined; their sequences."""
    acks = []
    for envelope in parse_events(json.dumps(events).encode()):
        headers = {MSG_ID_HEADER: envelope.id, ENVELOPE_HEADER: ENVELOPE_VERSION}
        acks.append(await js.publish_async(envelope.subject, envelope.to_json(), headers=headers))
    return [ack.seq for ack in await asyncio.gather(*acks)]


def consumers_created() -> float:
    return sum(CONSUMERS_CREATED.labels(purpose)._value.get() for purpose in ("read", "probe"))


async def resume(client, params: dict[str, str], after: int) -> tuple[list[int], list[str]]:
    """(event ids, control events) up to stream.caught_up."""
    ids: list[int] = []
    controls: list[str] = []
    headers = {"Last-Event-ID": str(after)}
    async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        messages = read_sse(response)
        async with asyncio.timeout(20):
            while True:
                message = await next_event(messages)
                if message.event.startswith("stream."):
                    controls.append(message.event)
                    if message.event in ("stream.caught_up", "stream.end"):
                        return ids, controls
                else:
                    ids.append(int(message.id))


async def resume_until(client, params: dict[str, str], after: int, count: int) -> tuple[list[int], list[str]]:
    """(event ids, control events) until `count` events came, history and live."""
    ids: list[int] = []
    controls: list[str] = []
    headers = {"Last-Event-ID": str(after)}
    async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        messages = read_sse(response)
        async with asyncio.timeout(30):
            while len(ids) < count:
                message = await next_event(messages)
                if message.event.startswith("stream."):
                    controls.append(message.event)
                else:
                    ids.append(int(message.id))
    return ids, controls


async def caught_up(recent: RecentEvents, seq: int) -> None:
    async with asyncio.timeout(10):
        while recent.last_seq < seq:
            await asyncio.sleep(0.02)


async def test_resumes_inside_the_window_create_no_jetstream_consumer(
    nats_url, events_stream, js, edge_settings
):
    app: FastAPI = create_app(edge_settings(nats_url))
    async with serving(app) as edge:
        stored = await store_bulk(js, [event(n, f"node-{n % 4}") for n in range(200)])
        await caught_up(app.state.recent_events, stored[-1])
        consumers_before = (await js.stream_info(EVENTS_STREAM)).state.consumer_count
        created_before = consumers_created()
        memory_before = RESUMES.labels("memory")._value.get()
        starts = [stored[0], stored[50], stored[150], stored[-1]]
        queries = [{}, {"resource_id": "node-1"}, {"resource_id": "node-2,node-3"}, {"type": "node_metrics"}]
        results = await asyncio.gather(
            *(resume(edge, params, after) for params in queries for after in starts for _ in range(3))
        )
        created_after = consumers_created()
        consumers_after = (await js.stream_info(EVENTS_STREAM)).state.consumer_count
    expected = {
        (i, j): [
            seq
            for n, seq in enumerate(stored)
            if seq > after and (not params.get("resource_id") or f"node-{n % 4}" in params["resource_id"])
        ]
        for i, params in enumerate(queries)
        for j, after in enumerate(starts)
    }
    for k, (ids, controls) in enumerate(results):
        i, j = divmod(k // 3, len(starts))
        assert ids == expected[(i, j)], (queries[i], starts[j])
        assert controls == ["stream.ready", "stream.caught_up"]
    assert created_after == created_before
    assert consumers_after == consumers_before
    assert RESUMES.labels("memory")._value.get() - memory_before == len(results)


async def test_a_restarted_edge_serves_resumes_of_the_last_seconds_from_memory_at_once(
    nats_url, events_stream, js, edge_settings
):
    stored = await store_bulk(js, [event(n) for n in range(100)])  # before the edge starts
    app: FastAPI = create_app(edge_settings(nats_url))
    async with serving(app) as edge:
        await caught_up(app.state.recent_events, stored[-1])
        created_before = consumers_created()
        ids, controls = await resume(edge, {}, stored[10])
        assert ids == stored[11:]
        assert controls == ["stream.ready", "stream.caught_up"]
        assert consumers_created() == created_before
        live = await store_event(js, event(1000))
        ids, _ = await resume(edge, {}, stored[-1])
        assert ids == [live]


async def test_replays_beyond_the_slots_and_the_start_rate_wait_their_turn_and_stay_exact(
    nats_url, events_stream, js, edge_settings
):
    app: FastAPI = create_app(
        edge_settings(nats_url, recent_events_bytes=0, max_concurrent_replays=1, replay_starts_per_second=4)
    )
    async with serving(app) as edge:
        history: JetStreamHistory = app.state.history
        stored = await store_bulk(js, [event(n, f"node-{n % 3}") for n in range(300)])
        most_waiting = 0.0
        most_reading = 0

        async def watch() -> None:
            nonlocal most_waiting, most_reading
            while True:
                most_waiting = max(most_waiting, HISTORY_READS_WAITING._value.get())
                most_reading = max(most_reading, history.admission.in_use)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        starts = [stored[k] for k in (0, 40, 90, 170, 230, 280)]
        try:
            results = await asyncio.gather(*(resume(edge, {}, after) for after in starts))
        finally:
            watcher.cancel()
    for after, (ids, controls) in zip(starts, results, strict=True):
        assert ids == [seq for seq in stored if seq > after]
        assert controls == ["stream.ready", "stream.caught_up"]
    assert most_waiting >= 4  # six at once, one slot, four starts a second: they queued
    assert most_reading == 1


def _dechunked(raw: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 response, as far as it arrived."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:40]
    body = bytearray()
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0 or len(rest) < size + 2:
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return bytes(body)


async def test_a_stalled_clients_replay_holds_bounded_memory_and_stays_exact(
    nats_url, events_stream, js, edge_settings
):
    client_buffer = 256 * 1024
    per_replay = 2 * 2**20
    app: FastAPI = create_app(
        edge_settings(
            nats_url,
            recent_events_bytes=0,
            client_buffer_bytes=client_buffer,
            replay_pending_bytes=per_replay,
        )
    )
    async with serving(app) as edge:
        history: JetStreamHistory = app.state.history
        stored = []
        for start in range(0, 4000, 500):  # ~12 MB of events
            stored += await store_bulk(js, [event(n, message_bytes=3000) for n in range(start, start + 500)])
        async with asyncio.timeout(20):  # the feed has them all: none is live for the client below
            while FEED.last_seq < stored[-1]:
                await asyncio.sleep(0.05)
        port = edge.base_url.port
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that does not read
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        request = f"GET /api/v1/events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {stored[0] - 1}\r\n\r\n"
        await loop.sock_sendall(sock, request.encode())
        try:
            await asyncio.sleep(3)  # the replay fills what it may, then waits for the client
            assert len(history._reading) == 1, await loop.sock_recv(sock, 2000)
            (reading,) = history._reading
            assert reading.pending_bytes <= per_replay
            assert reading.restarts == 0  # flow control held the server back: nothing dropped
            assert reading.delivered < len(stored) / 2  # it is the client that holds it back
            (subscriber,) = list(app.state.fanout)
            assert subscriber.holding
            raw = bytearray()
            async with asyncio.timeout(30):
                while b"event: stream.caught_up" not in raw[-4096:]:
                    chunk = await loop.sock_recv(sock, 1 << 20)
                    assert chunk, "closed before caught up"
                    raw += chunk
        finally:
            sock.close()
    ids = [int(seq) for seq in re.findall(rb"^id: (\d+)$", _dechunked(bytes(raw)), re.MULTILINE)]
    assert ids == stored


async def test_a_replay_waiting_its_turn_outlives_more_live_events_than_its_buffer(
    nats_url, events_stream, js, edge_settings
):
    """Live events pile up for a stream whose replay waits for a slot: beyond the client's buffer
    they are dropped and read again from JetStream after the history, not an overflow."""
    app: FastAPI = create_app(
        edge_settings(
            nats_url, recent_events_bytes=0, client_buffer_bytes=64 * 1024, max_concurrent_replays=1
        )
    )
    async with serving(app) as edge:
        history: JetStreamHistory = app.state.history
        stored = await store_bulk(js, [event(n, message_bytes=3000) for n in range(3000)])
        async with asyncio.timeout(20):
            while FEED.last_seq < stored[-1]:
                await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.setblocking(False)
        await loop.sock_connect(stalled, ("127.0.0.1", edge.base_url.port))
        request = f"GET /api/v1/events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {stored[0]}\r\n\r\n"
        await loop.sock_sendall(stalled, request.encode())
        async with asyncio.timeout(10):  # the stalled client holds the one slot
            while history.admission.in_use == 0:
                await asyncio.sleep(0.02)
        # Its history (node_metrics after stored[0]) is empty, but it takes a slot to find out.
        waiting = asyncio.create_task(resume_until(edge, {"type": "node_metrics"}, stored[0], 400))
        async with asyncio.timeout(10):
            while HISTORY_READS_WAITING._value.get() < 1:
                await asyncio.sleep(0.02)
        reread_before = EVENTS_REREAD._value.get()
        live = await store_bulk(js, [event(10_000 + n) for n in range(400)])  # ~400 KB, 6 buffers
        await asyncio.sleep(1)
        assert not waiting.done()
        stalled.close()  # its slot frees
        ids, controls = await asyncio.wait_for(waiting, 30)
        assert EVENTS_REREAD._value.get() > reread_before  # live events were dropped and read again
    assert ids == live
    assert controls == ["stream.ready", "stream.caught_up"]
