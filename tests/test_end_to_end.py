"""POST to the collector → JetStream → the edge's SSE stream, and → any plain NATS subscriber."""

import asyncio
import contextlib
import json

import pytest
from nats.js.api import DeliverPolicy

from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

pytestmark = pytest.mark.nats


@contextlib.asynccontextmanager
async def farm(nats_url: str):
    """A collector and an edge on one NATS, as `make run` has them."""
    nats = NatsSettings(url=nats_url)
    async with serving(create_collector(CollectorSettings(nats=nats))) as collector:
        async with serving(create_edge(EdgeSettings(nats=nats))) as edge:
            yield collector, edge


def mixed_events() -> list[dict]:
    events = []
    for node in ("node-001", "node-002"):
        for event_type in ("node_status", "node_metrics", "system_log"):
            events.append(SEED_EXAMPLES[event_type] | {"resource_id": node})
    return events


async def test_a_posted_event_arrives_filtered_on_the_sse_stream(nats_url):
    async with farm(nats_url) as (collector, edge):
        params = {"type": "node_status", "resource_id": "node-002"}
        async with edge.stream("GET", "/api/v1/events", params=params) as response:
            messages = read_sse(response)
            assert (await next_event(messages)).event == "stream.ready"
            assert (await next_event(messages)).event == "stream.caught_up"
            posted = await collector.post("/api/v1/events", json=mixed_events())
            assert posted.status_code == 202
            results = posted.json()["events"]
            received = await asyncio.wait_for(next_event(messages), 5)
            # the only matching event is node_status of node-002: index 3 of the batch
            assert received.event == "node_status"
            assert int(received.id) == results[3]["seq"]
            assert received.json()["id"] == results[3]["id"]
            assert received.json()["data"] == SEED_EXAMPLES["node_status"]["data"]
            # a retry of the same batch is deduplicated and therefore never streamed again
            retried = await collector.post(
                "/api/v1/events",
                json=[e | {"id": r["id"]} for e, r in zip(mixed_events(), results, strict=True)],
            )
            assert retried.json()["duplicates"] == 6
            # node-002 is online now: only a change of state is a new event
            marker = await collector.post(
                "/api/v1/events",
                json={
                    "event": "node_status",
                    "resource_id": "node-002",
                    "id": "marker",
                    "data": {"new_state": "offline"},
                },
            )
            after = await asyncio.wait_for(next_event(messages), 5)
            assert after.json()["id"] == "marker"
            assert int(after.id) == marker.json()["events"][0]["seq"]


async def test_other_services_subscribe_to_the_documented_subjects(nats_url, nc, js):
    """What docs/guide/nats.md tells other services to do, with nothing but nats-py and the subject names."""
    core_received: list[tuple[str, dict]] = []

    async def on_core(msg):
        core_received.append((msg.subject, json.loads(msg.data)))

    await nc.subscribe("events.node_status.*", cb=on_core)
    await nc.flush()
    async with farm(nats_url) as (collector, _edge):
        # A durable JetStream consumer: it sees history too, and survives its own restarts.
        consumer = await js.pull_subscribe("events.*.node-001", durable="e2e-reader", stream="EVENTS")
        posted = await collector.post("/api/v1/events", json=mixed_events())
        assert posted.status_code == 202
        pulled = await consumer.fetch(10, timeout=2)
        for msg in pulled:
            await msg.ack()
        ordered = await js.subscribe("events.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        replayed = [await ordered.next_msg(timeout=2) for _ in range(6)]

    assert [m.subject for m in pulled] == [
        "events.node_status.node-001",
        "events.node_metrics.node-001",
        "events.system_log.node-001",
    ]
    assert [m.metadata.sequence.stream for m in replayed] == [e["seq"] for e in posted.json()["events"]]
    assert [subject for subject, _ in core_received] == [
        "events.node_status.node-001",
        "events.node_status.node-002",
    ]
    assert all(body["event"] == "node_status" for _, body in core_received)


async def test_readme_curl_example_shape(nats_url):
    """The first-stream example (README.md): POST one event, see it with `id:` = its sequence."""
    async with farm(nats_url) as (collector, edge):
        # curl sends no Accept-Encoding unless told (--compressed): the stream comes uncompressed.
        plain = {"Accept-Encoding": "identity"}
        async with edge.stream("GET", "/api/v1/events?type=node_status", headers=plain) as response:
            raw = response.aiter_raw()
            opening = b""
            while b"stream.caught_up" not in opening:
                opening += await anext(raw)
            posted = await collector.post(
                "/api/v1/events",
                json={"event": "node_status", "resource_id": "node-001", "data": {"new_state": "online"}},
            )
            seq = posted.json()["events"][0]["seq"]
            chunk = b""
            while b"\n\n" not in chunk:
                chunk += await asyncio.wait_for(anext(raw), 5)
    lines = chunk.decode().split("\n")
    assert lines[0] == f"id: {seq}"
    assert lines[1] == "event: node_status"
    assert lines[2].startswith('data: {"id":')
