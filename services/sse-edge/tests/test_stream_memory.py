"""Closed streams are freed at once, by reference counting, not whenever the cycle collector runs.

The edge runs its collector rarely (`GC_YOUNG_THRESHOLD`): what a closed stream leaves in a
reference cycle (its socket's transport, uvicorn's request cycle, its filter group's log) stays
in memory for minutes, and once promoted to an older generation for much longer. The soak
(bench/bench_soak.py) saw the edge's RSS creep that way. Each test here counts the objects a
closed stream leaves for the collector: none.
"""

import asyncio
import collections
import gc
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import nats
import pytest
import uvloop
from fastapi import FastAPI
from nats.js import JetStreamContext

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.subjects import SubjectFilter
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.auth.settings import AuthSettings
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import ensure_events_stream
from sse_edge.app import create_app
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.filter_group import FilterGroup, FramedEvent
from sse_edge.live.subscriber import Subscriber


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    """The cycle collector off: whatever survives `del` is held by a cycle (or a registry)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def subscriber(index: FanoutIndex, resource_id: str) -> Subscriber:
    client = Subscriber(SubjectFilter.of([], [resource_id]), 10_000, "test")
    index.add(client)
    client.release(0)
    return client


@pytest.mark.usefixtures("no_cycle_collector")
def test_a_client_that_parked_and_left_is_freed_with_its_group():
    index = FanoutIndex(10_000)
    before = (alive(Subscriber), alive(FilterGroup))
    for n in range(50):
        client = subscriber(index, f"node-{n}")
        index.publish("node_status", f"node-{n}", FramedEvent(n + 1, b"data: x\n\n", None, 0.0))
        client.take()
        client.park().close()  # the writer waits for the next frame; the client leaves meanwhile
        client.close("disconnected")
        index.remove(client)
    del client
    assert index.group_count == 0
    assert (alive(Subscriber), alive(FilterGroup)) == before


@pytest.mark.usefixtures("no_cycle_collector")
def test_a_parked_client_that_left_a_group_others_still_read_is_freed():
    index = FanoutIndex(10_000)
    stays = subscriber(index, "node-1")
    before = alive(Subscriber)
    for _ in range(50):
        client = subscriber(index, "node-1")
        client.park().close()
        client.close("disconnected")
        index.remove(client)
    del client
    assert alive(Subscriber) == before
    assert (index.group_count, len(index)) == (1, 1)
    index.publish("node_status", "node-1", FramedEvent(1, b"data: x\n\n", None, 0.0))
    assert stays.take()[1] == 1


# -- every kind of stream, against a served edge --------------------------------------------------

SECRET = "stream-memory-test-secret-0123456789abcdef"
GRANT = {"subscribe": {}}  # every type, every resource
# Where the objects a stream's request leaves behind are defined; the HTTP client's own cycles
# (httpx, httpcore, anyio) are the test's, not the edge's.
SERVER_MODULES = (
    "sse_edge",
    "eh_runtime",
    "uvicorn",
    "starlette",
    "fastapi",
    "structlog",
    "prometheus_client",
)


def status(resource_id: str, n: int) -> dict[str, Any]:
    return SEED_EXAMPLES["node_status"] | {"resource_id": resource_id, "id": f"{resource_id}-{n}"}


def token() -> dict[str, str]:
    body = {"sub": "dash", "aud": "event-handler", "exp": int(time.time()) + 600, "eh": GRANT}
    return {"Authorization": f"Bearer {jwt.encode(body, SECRET, algorithm='HS256')}"}


async def open_and_leave(
    client: httpx.AsyncClient,
    js: JetStreamContext,
    params: dict[str, Any],
    headers: dict[str, str],
    *,
    live_resource: str | None = None,
    change: dict[str, Any] | None = None,
) -> int | None:
    """Open a stream, read its history, optionally one live event (the writer parks and wakes) or
    a filter change, then leave as a browser tab does: the socket closes. Returns the last id read."""
    last: int | None = None
    async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        messages = read_sse(response)
        ready = await asyncio.wait_for(next_event(messages), 10)
        assert ready.event == "stream.ready"
        while (message := await asyncio.wait_for(next_event(messages), 10)).event not in (
            "stream.caught_up",
            "stream.end",
        ):
            last = int(message.id) if message.id else last
        if message.event == "stream.end":
            return last
        if change is not None:
            subscription = ready.json()["subscription_id"]
            answer = await client.patch(f"/api/v1/subscriptions/{subscription}", json=change, headers=headers)
            assert answer.status_code == 200, answer.text
            assert (await asyncio.wait_for(next_event(messages), 10)).event == "stream.filters_changed"
        if live_resource is not None:
            seq = await store_event(js, status(live_resource, random.randrange(10**9)))
            while last != seq:
                message = await asyncio.wait_for(next_event(messages), 10)
                last = int(message.id) if message.id else last
    return last


async def streams_of_every_kind(client: httpx.AsyncClient, js: JetStreamContext, old_id: int) -> None:
    now = datetime.now(UTC)
    last = await open_and_leave(client, js, {}, token(), live_resource="node-1")
    assert last is not None
    kinds: list[tuple[dict[str, Any], dict[str, str], dict[str, Any]]] = [
        ({"type": "node_status"}, token(), {"live_resource": "node-2"}),
        ({"resource_id": "node-3"}, token(), {"live_resource": "node-3"}),
        ({"type": "node_status", "resource_id": "node-1,node-4"}, token(), {"live_resource": "node-4"}),
        ({"filter": 'resource_id == "node-5"'}, token(), {"live_resource": "node-5"}),
        ({"max_rate": 50}, token(), {"live_resource": "node-6"}),
        ({}, token() | {"Last-Event-ID": str(last)}, {"live_resource": "node-7"}),  # from memory
        ({}, token() | {"Last-Event-ID": str(old_id)}, {}),  # from JetStream
        ({"start_time": (now - timedelta(minutes=5)).isoformat()}, token(), {}),
        ({"limit": 5, "type": "node_status"}, token(), {}),
        ({"snapshot": "latest"}, token(), {"live_resource": "node-8"}),
        ({"end_time": (now - timedelta(seconds=1)).isoformat(), "limit": 3}, token(), {}),  # ends itself
        ({"end_time": (now + timedelta(minutes=5)).isoformat()}, token(), {}),
        ({"resource_id": "node-9"}, token(), {"change": {"resource_id": ["node-10"]}}),
        ({"resource_id": "node-11"}, {}, {}),  # without a token: refused
    ]
    for params, headers, options in kinds:
        if not headers:
            assert (await client.get("/api/v1/events", params=params)).status_code == 401
            continue
        await open_and_leave(client, js, params, headers, **options)
    assert (
        await client.get("/api/v1/events", params={"filter": "data.("}, headers=token())
    ).status_code == 422
    page = await client.get("/api/v1/events/history", params={"limit": 5}, headers=token())
    assert page.status_code == 200


async def until_all_closed(app: FastAPI) -> None:
    index, limits = app.state.fanout, app.state.connection_limits
    async with asyncio.timeout(10):
        while len(index) or limits.total:
            await asyncio.sleep(0.05)


def server_side_garbage() -> collections.Counter[str]:
    """What the cycle collector finds unreachable now, by type, of the server's modules only."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if str(getattr(type(o), "__module__", "")).startswith(SERVER_MODULES)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


@pytest.mark.nats
@pytest.mark.slow
def test_closed_streams_of_every_kind_leave_nothing_behind(nats_server, edge_settings):
    """Production's loop (uvloop) and auth (tokens that expire: a timer per stream); every kind of
    stream opened and left three times: the registries are empty and the cycle collector finds
    nothing of the server's to free."""

    async def scenario() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_events_stream(js, StreamSettings())
        old_id = await store_event(js, status("node-1", 0))
        for n in range(1, 40):
            await store_event(js, status(f"node-{n % 12}", n))
        auth = AuthSettings(mode="jwt", secret=SECRET, leeway=0)
        # A window smaller than what is stored: a resume from the first event reads JetStream.
        app = create_app(edge_settings(nats_server.url, auth=auth, recent_events_bytes=4096))
        try:
            async with serving(app) as client:
                await streams_of_every_kind(client, js, old_id)  # caches and first-use allocations
                await until_all_closed(app)
                gc.collect()
                gc.disable()
                try:
                    for _ in range(3):
                        await streams_of_every_kind(client, js, old_id)
                    await until_all_closed(app)
                    garbage = server_side_garbage()
                finally:
                    gc.enable()
                index = app.state.fanout
                assert (len(index), index.group_count, index.subscription_count) == (0, 0, 0)
                assert app.state.connection_limits.held == (0, {}, {})
                assert not garbage, f"closed streams left cycles for the collector: {dict(garbage)}"
        finally:
            await nc.close()

    uvloop.run(scenario())
