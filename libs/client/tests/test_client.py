"""The client against a real collector, edge and nats-server."""

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_client import Control, Event, EventClient, EventStreamError, RequestError, SyncEventClient
from eh_contracts.envelope import NodeMetricsEvent
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

pytestmark = pytest.mark.nats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def edge_app(nats_url: str):
    return create_edge(EdgeSettings(nats=NatsSettings(url=nats_url, reconnect_wait=0.05)))


@pytest.fixture
async def farm(nats_url: str) -> AsyncIterator[tuple[EventClient, int]]:
    """A collector and an edge (on a port the test may restart it on), and a client of both."""
    nats = NatsSettings(url=nats_url, reconnect_wait=0.05)
    edge_port = free_port()
    async with serving(create_collector(CollectorSettings(nats=nats))) as collector:
        async with serving(edge_app(nats_url), port=edge_port):
            client = EventClient(f"http://127.0.0.1:{edge_port}", collector_url=str(collector.base_url))
            try:
                yield client, edge_port
            finally:
                await client.aclose()


def metrics(node: str, usage: float) -> dict:
    data = SEED_EXAMPLES["node_metrics"]["data"] | {"cpu": {"usage": usage, "cores": 8}}
    return {"event": "node_metrics", "resource_id": node, "data": data}


async def take(stream, n: int, timeout: float = 10.0) -> list:
    items = []
    async with asyncio.timeout(timeout):
        async for item in stream:
            items.append(item)
            if len(items) == n:
                break
    return items


async def test_publish_gives_each_event_an_id_and_a_result_and_a_retry_stores_nothing_twice(farm):
    client, _ = farm
    invalid = {"event": "node_metrics", "resource_id": "bad id!", "data": {}}
    result = await client.publish([metrics("node-1", 10), invalid, metrics("node-2", 20)])
    assert [e.status for e in result.events] == ["stored", "invalid", "stored"]
    assert not result.ok
    assert result.rejected[0].index == 1
    assert result.rejected[0].errors
    assert all(e.id for e in result.events)
    again = await client.publish(
        [
            metrics("node-1", 10) | {"id": result.events[0].id},
            metrics("node-2", 20) | {"id": result.events[2].id},
        ]
    )
    assert [e.status for e in again.events] == ["duplicate", "duplicate"]
    assert [e.seq for e in again.events] == [result.events[0].seq, result.events[2].seq]


async def test_events_are_typed_and_controls_are_exposed(farm):
    client, _ = farm
    stream = client.events(types="node_metrics", resources=["node-7"])
    items = aiter(stream)
    ready, caught_up = await take(items, 2)
    assert isinstance(ready, Control)
    assert ready.name == "stream.ready"
    assert isinstance(caught_up, Control)
    assert caught_up.kind == "caught_up"
    stored = await client.publish(metrics("node-8", 1), metrics("node-7", 42.5))
    (event,) = await take(items, 1)
    assert isinstance(event, Event)
    assert isinstance(event.envelope, NodeMetricsEvent)
    assert event.envelope.data.cpu.usage == 42.5
    assert event.seq == stored.events[1].seq
    assert stream.last_event_id == event.seq
    await items.aclose()


async def test_history_then_live_with_since_and_limit(farm):
    client, _ = farm
    await client.publish([metrics("node-1", i) for i in range(20)])
    items = aiter(client.events(resources="node-1", since="10m", limit=5))
    got = await take(items, 7)
    assert [i.name for i in got if isinstance(i, Control)] == ["stream.ready", "stream.caught_up"]
    assert [i.envelope.data.cpu.usage for i in got if isinstance(i, Event)] == [15, 16, 17, 18, 19]
    await items.aclose()


async def test_the_stream_resumes_exactly_after_the_edge_restarts(nats_url):
    nats = NatsSettings(url=nats_url, reconnect_wait=0.05)
    edge_settings = EdgeSettings(
        nats=nats, retry=timedelta(milliseconds=100), shutdown_spread=timedelta(milliseconds=300)
    )
    port = free_port()
    async with serving(create_collector(CollectorSettings(nats=nats))) as collector:
        async with EventClient(f"http://127.0.0.1:{port}", collector_url=str(collector.base_url)) as client:
            edge = serving(create_edge(edge_settings), port=port)
            await edge.__aenter__()
            stream = client.events(types="node_metrics")
            items = aiter(stream)
            await take(items, 2)  # ready, caught_up
            published = (await client.publish([metrics("node-1", i) for i in range(5)])).events
            received: list[int] = []
            controls: list[str] = []

            async def read(n: int) -> None:
                async for item in items:
                    if isinstance(item, Event):
                        received.append(item.seq)
                        if len(received) == n:
                            return
                    else:
                        controls.append(item.name)

            await asyncio.wait_for(read(5), 10)
            reader = asyncio.create_task(read(15))
            await edge.__aexit__(None, None, None)  # graceful: stream.shutdown, then the socket closes
            published += (await client.publish([metrics("node-1", i) for i in range(5, 10)])).events
            async with serving(create_edge(edge_settings), port=port):
                published += (await client.publish([metrics("node-1", i) for i in range(10, 15)])).events
                await asyncio.wait_for(reader, 20)
            await items.aclose()
    assert received == [e.seq for e in published]  # nothing missing, nothing twice, in order
    assert "stream.shutdown" in controls
    assert "client.reconnecting" in controls
    assert stream.connections >= 2


async def test_history_pages_and_the_sync_wrapper(farm):
    client, port = farm
    stored = await client.publish([metrics(f"node-{i % 3}", i) for i in range(25)])
    pages = []
    cursor = None
    while True:
        page = await client.history_page(resources="node-1", page_size=4, cursor=cursor)
        pages.append([e.seq for e in page.events])
        if page.next is None:
            break
        cursor = page.next
    wanted = [e.seq for i, e in enumerate(stored.events) if i % 3 == 1]
    assert [seq for page in pages for seq in page] == wanted
    assert all(len(page) <= 4 for page in pages)
    newest = [
        e.seq async for e in client.history(resources="node-1", order="desc", page_size=3, max_events=5)
    ]
    assert newest == wanted[::-1][:5]

    def in_a_thread() -> list[int]:
        with SyncEventClient(
            f"http://127.0.0.1:{port}", collector_url=str(client.collector.base_url)
        ) as sync:
            posted = sync.publish(metrics("node-9", 1))
            assert posted.ok
            return [e.seq for e in sync.history(resources="node-9")]

    seqs = await asyncio.to_thread(in_a_thread)
    assert len(seqs) == 1


async def test_a_refused_query_raises_with_the_servers_words(farm):
    client, _ = farm
    with pytest.raises(EventStreamError, match="type") as caught:
        await take(client.events(types="no_such_type"), 1)
    assert caught.value.status == 422


async def test_current_state_from_the_collector(farm):
    client, _ = farm
    await client.heartbeat("node-42", metrics=SEED_EXAMPLES["node_metrics"]["data"], ip="10.0.0.42")
    state = await client.state("node", "node-42")
    assert state["id"] == "node-42"
    assert state["state"] == "online"
    assert state["stream_seq"] >= state["seq"]
    every = await client.state("node")
    assert [r["id"] for r in every["resources"]] == ["node-42"]
    with pytest.raises(RequestError) as caught:
        await client.state("node", "node-43")
    assert caught.value.status == 404
