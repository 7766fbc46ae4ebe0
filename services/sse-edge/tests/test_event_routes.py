import asyncio
import contextlib
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import nats
import pytest
from fastapi import Depends, Header, HTTPException
from prometheus_client import REGISTRY

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import SseMessage, next_event, read_sse
from eh_runtime.stream import EVENTS_STREAM
from sse_edge.app import create_app
from sse_edge.http import event_routes
from sse_edge.http.connection_limits import ConnectionLimits
from sse_edge.http.dependencies import edge_of

pytestmark = pytest.mark.nats

TYPES = ["node_status", "node_metrics", "pipeline_status", "system_log"]
RESOURCES = ["node-1", "node-2", "node-3"]


@contextlib.asynccontextmanager
async def subscribe(
    client: httpx.AsyncClient, params=None, headers=None
) -> AsyncIterator[AsyncIterator[SseMessage]]:
    """Open an SSE stream and wait for `stream.ready`, after which every new event is delivered."""
    async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        messages = read_sse(response)
        ready = await asyncio.wait_for(next_event(messages), 5)
        assert ready.event == "stream.ready"
        caught_up = await asyncio.wait_for(next_event(messages), 5)
        assert caught_up.event == "stream.caught_up"
        yield messages


async def collect(messages: AsyncIterator[SseMessage], count: int, quiet: float = 0.3) -> list[SseMessage]:
    """Exactly `count` events, then nothing else for `quiet` seconds (heartbeats aside)."""
    events = [await asyncio.wait_for(next_event(messages), 5) for _ in range(count)]
    with contextlib.suppress(TimeoutError):
        extra = await asyncio.wait_for(next_event(messages), quiet)
        pytest.fail(f"unexpected extra event: {extra}")
    return events


def event(event_type: str, resource_id: str, **changes) -> dict:
    return SEED_EXAMPLES[event_type] | {"resource_id": resource_id} | changes


async def test_stream_opens_with_a_retry_hint_and_stream_ready(edge):
    async with edge.stream("GET", "/api/v1/events", params={"type": "node_status,system_log"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        messages = read_sse(response)
        first = await anext(messages)
        assert first.retry == 3000
        ready = await next_event(messages)
        assert ready.event == "stream.ready"
        assert ready.id is None  # control events never move Last-Event-ID
        assert ready.json()["filters"] == {"type": ["node_status", "system_log"], "resource_id": []}


async def test_filtered_clients_receive_exactly_the_matching_events(edge, js):
    filters = {
        "everything": {},
        "one type": {"type": "node_status"},
        "one resource": {"resource_id": "node-2"},
        "types and resources": {"type": ["node_metrics", "system_log"], "resource_id": "node-1,node-3"},
    }
    async with contextlib.AsyncExitStack() as stack:
        streams = {
            name: await stack.enter_async_context(subscribe(edge, params)) for name, params in filters.items()
        }
        published = []
        for event_type, resource_id in list(itertools.product(TYPES, RESOURCES)) * 2:
            seq = await store_event(js, event(event_type, resource_id))
            published.append((seq, event_type, resource_id))

        def wanted(name: str) -> list[tuple[int, str, str]]:
            types = {"one type": {"node_status"}, "types and resources": {"node_metrics", "system_log"}}.get(
                name
            )
            resources = {"one resource": {"node-2"}, "types and resources": {"node-1", "node-3"}}.get(name)
            return [
                p
                for p in published
                if (types is None or p[1] in types) and (resources is None or p[2] in resources)
            ]

        for name, messages in streams.items():
            expected = wanted(name)
            received = await collect(messages, len(expected))
            got = [(int(m.id), m.event, m.json()["resource_id"]) for m in received]
            assert got == expected, name


async def test_sse_id_is_the_stream_sequence_and_data_the_stored_bytes(edge, js):
    async with subscribe(edge, {"type": "pipeline_status"}) as messages:
        seqs = [await store_event(js, event("pipeline_status", f"pipeline-{i}")) for i in range(3)]
        received = await collect(messages, 3)
    assert [int(m.id) for m in received] == seqs
    for message, seq in zip(received, seqs, strict=True):
        stored = await js.get_msg(EVENTS_STREAM, seq)
        assert message.data.encode() == stored.data
        assert message.event == "pipeline_status"


async def test_repeated_and_comma_separated_filters_are_the_same(edge):
    async with subscribe(
        edge, [("type", "node_status"), ("type", "system_log"), ("resource_id", "a,b"), ("resource_id", "c")]
    ):
        pass
    async with edge.stream(
        "GET", "/api/v1/events", params={"type": "system_log,node_status,", "resource_id": "c, b,a,a"}
    ) as r:
        ready = await next_event(read_sse(r))
    assert ready.json()["filters"] == {"type": ["node_status", "system_log"], "resource_id": ["a", "b", "c"]}


@pytest.mark.parametrize(
    ("params", "parameter", "fragment"),
    [
        ({"type": "node_reboot"}, "type", "unknown event type 'node_reboot'"),
        ({"type": "node_status,>"}, "type", "unknown event type '>'"),
        ({"resource_id": "node.1"}, "resource_id", "contains '.'"),
        ({"resource_id": "*"}, "resource_id", "contains '*'"),
        ({"resource_id": "node 1"}, "resource_id", "contains ' '"),
        ({"resource_id": "x" * 129}, "resource_id", "129 characters"),
        ({"resource_id": ",".join(f"n{i}" for i in range(501))}, "resource_id", "at most 500"),
    ],
)
async def test_invalid_filters_are_a_422_naming_the_parameter_before_the_stream_opens(
    edge, params, parameter, fragment
):
    response = await edge.get("/api/v1/events", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    (detail,) = response.json()["detail"]
    assert detail["field"] == parameter
    assert detail["in"] == "query"
    assert fragment in detail["msg"]


async def test_heartbeat_comments_keep_an_idle_stream_open(nats_url, events_stream, edge_settings):
    async with serving(create_app(edge_settings(nats_url, heartbeat_interval=0.2))) as client:
        async with client.stream("GET", "/api/v1/events") as response:
            messages = read_sse(response)
            heartbeats = 0
            async for message in messages:
                if message.is_comment_only:
                    assert message.comments == ["heartbeat"]
                    heartbeats += 1
                    if heartbeats == 2:
                        break


async def test_a_disconnected_client_leaves_the_index(edge, edge_app, js):
    async with subscribe(edge, {"resource_id": "node-1"}):
        assert len(edge_app.state.fanout) == 1
    for _ in range(50):
        if len(edge_app.state.fanout) == 0:
            break
        await asyncio.sleep(0.02)
    assert len(edge_app.state.fanout) == 0
    await store_event(js, event("node_status", "node-1"))  # no client to deliver to: must not fail


async def test_shutdown_sends_stream_shutdown_and_ends_the_stream(edge, edge_app):
    async with subscribe(edge) as messages:
        edge_app.state.service.request_stop()
        retry = await asyncio.wait_for(anext(messages), 5)
        farewell = await asyncio.wait_for(anext(messages), 5)
        assert farewell.event == "stream.shutdown"
        assert retry.retry == farewell.json()["retry_ms"]
        assert 3000 <= retry.retry <= 10000
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(messages), 5)


@pytest.mark.own_server
async def test_live_events_continue_after_nats_restarts(nats_server, js, events_stream, edge_settings):
    async with serving(create_app(edge_settings(nats_server.url))) as client:
        async with subscribe(client, {"type": "system_log"}) as messages:
            before = await store_event(js, event("system_log", "log-1"))
            assert int((await asyncio.wait_for(next_event(messages), 5)).id) == before
            nats_server.stop()
            nats_server.start()
            publisher = await nats.connect(nats_server.url)
            after = await store_event(publisher.jetstream(), event("system_log", "log-2"))
            await publisher.close()
            received = await asyncio.wait_for(next_event(messages), 20)
            assert int(received.id) == after
            assert json.loads(received.data)["resource_id"] == "log-2"


async def test_a_route_level_dependency_runs_on_the_event_stream(edge_app, events_stream):
    """The stream is an ordinary FastAPI route: a `Depends(...)` added to it (authentication, say)
    runs before the stream opens, and its refusal is the client's answer."""
    seen: list[str | None] = []

    async def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        seen.append(authorization)
        if authorization != "Bearer let-me-in":
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    edge_app.include_router(event_routes.router, prefix="/guarded", dependencies=[Depends(require_token)])
    async with serving(edge_app) as client:
        refused = await client.get("/guarded/api/v1/events", params={"type": "node_status"})
        assert refused.status_code == 401
        assert refused.json() == {"detail": "a bearer token is required"}
        assert refused.headers["www-authenticate"] == "Bearer"
        headers = {"Authorization": "Bearer let-me-in"}
        async with client.stream("GET", "/guarded/api/v1/events", headers=headers) as response:
            assert response.status_code == 200
            ready = await asyncio.wait_for(next_event(read_sse(response)), 5)
            assert ready.event == "stream.ready"
        # The route without the dependency is untouched by it.
        async with subscribe(client):
            pass
    assert seen == [None, "Bearer let-me-in"]


async def test_the_stream_route_resolves_its_dependencies_per_request(edge_app, events_stream):
    """`GET /api/v1/events` itself goes through FastAPI's dependency injection (overrides apply)."""
    limits = edge_app.state.connection_limits
    admitted: list[str] = []

    class GuardedLimits(ConnectionLimits):
        def admit(self, address: str, principal: str | None = None) -> None:
            admitted.append(address)
            if len(admitted) == 1:
                raise HTTPException(401, "not you")
            super().admit(address, principal)

    guarded = GuardedLimits(limits.max_total, limits.max_per_address, int(limits.retry_after))
    edge_app.dependency_overrides[edge_of] = lambda: dataclasses.replace(
        edge_app.state.edge, connection_limits=guarded
    )
    async with serving(edge_app) as client:
        refused = await client.get("/api/v1/events")
        assert (refused.status_code, refused.json()) == (401, {"detail": "not you"})
        async with subscribe(client):
            assert guarded.total == 1
    assert admitted == ["127.0.0.1", "127.0.0.1"]


def _requests_counted(route: str, status: str) -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("eventhandler_http_requests_total", labels) or 0.0


async def test_http_metrics_label_streams_and_docs_with_their_route(edge, edge_app):
    before = {
        route: _requests_counted(route, "200") for route in ("/api/v1/events", "/docs", "/openapi.json")
    }
    unmatched = _requests_counted("unmatched", "404")
    async with subscribe(edge):
        pass
    assert (await edge.get("/docs")).status_code == 200
    assert (await edge.get("/openapi.json")).status_code == 200
    assert (await edge.get("/no/such/path")).status_code == 404
    # A stream is counted when it ends, once the edge has seen the client go.
    for _ in range(100):
        if _requests_counted("/api/v1/events", "200") > before["/api/v1/events"]:
            break
        await asyncio.sleep(0.05)
    for route, count in before.items():
        assert _requests_counted(route, "200") == count + 1, route
    assert _requests_counted("unmatched", "404") == unmatched + 1
