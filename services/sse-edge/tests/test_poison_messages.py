"""What is on the bus but is not an event never reaches a client, live, replayed or paged."""

import asyncio
import json
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.stored_events import ENVELOPE_HEADER
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app
from sse_edge.settings import EdgeSettings

pytestmark = pytest.mark.nats

VALID = SEED_EXAMPLES["node_status"] | {"id": "valid-1", "resource_id": "node-1"}
GHOST = b'{"timestamp":"2026-01-01T00:00:00Z","data":{"new_state":"offline"}}'

# (subject, payload, headers): each from issue 12, or of its kind.
POISON = [
    ("events.node_status.x", b"not json at all", None),
    ("events.node_status.x", b"", None),
    ("events.node_status.x", b'{"id":"u","data":"\xff\xfe"}', None),
    ("events.node_status.x", b"[" * 200_000, None),
    (
        "events.node_status.ghost",
        b'{"timestamp":"2026-01-01T00:00:00Z","data":{"new_state":"offline"}}',
        None,
    ),
    ("events.node_status", json.dumps(VALID).encode(), {"Nats-Msg-Id": "two-tokens"}),
    ("events.node_status", json.dumps(VALID).encode(), {ENVELOPE_HEADER: "1"}),  # two tokens, forged mark
    ("events.node_status.node-2", json.dumps(VALID).encode(), {"Nats-Msg-Id": "x"}),  # not its subject
]


def skipped(reader: str) -> float:
    total = 0.0
    for reason in ("malformed", "invalid", "wrong_subject", "no_id"):
        sample = REGISTRY.get_sample_value(
            "eventhandler_edge_messages_skipped_total", {"reason": reason, "reader": reader}
        )
        total += sample or 0.0
    return total


async def store_poison(js) -> None:
    for subject, payload, headers in POISON:
        await js.publish(subject, payload, stream="EVENTS", headers=headers)


async def events_of(client: httpx.AsyncClient, headers: dict[str, str], count: int) -> list:
    async with client.stream("GET", "/api/v1/events", headers=headers) as response:
        assert response.status_code == 200
        messages = read_sse(response)
        received = []
        while len(received) < count:
            message = await asyncio.wait_for(next_event(messages), 10)
            if not message.event.startswith("stream."):
                received.append(message)
        return received


async def test_live_clients_get_only_events(edge, js):
    before = skipped("live")
    async with edge.stream("GET", "/api/v1/events") as response:
        messages = read_sse(response)
        assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.ready"
        assert (await asyncio.wait_for(next_event(messages), 5)).event == "stream.caught_up"
        await store_poison(js)
        seq = await store_event(js, VALID)
        first = await asyncio.wait_for(next_event(messages), 10)
    assert (int(first.id), first.json()["id"]) == (seq, VALID["id"])
    assert skipped("live") - before == len(POISON)


async def test_replays_and_history_pages_hold_only_events(edge, js):
    await store_poison(js)
    seq = await store_event(js, VALID)
    (replayed,) = await events_of(edge, {"Last-Event-ID": "0"}, 1)
    assert int(replayed.id) == seq
    response = await edge.get("/api/v1/events/history", params={"limit": 100})
    assert response.status_code == 200
    page = json.loads(response.content)  # valid JSON whatever is stored
    assert [(e["seq"], e["id"]) for e in page["events"]] == [(seq, VALID["id"])]
    descending = json.loads((await edge.get("/api/v1/events/history", params={"order": "desc"})).content)
    assert [e["seq"] for e in descending["events"]] == [seq]


async def test_a_new_stream_gets_503_at_once_while_nats_is_down(nats_server, events_stream):
    settings = EdgeSettings(nats=NatsSettings(url=nats_server.url, reconnect_wait=0.05, request_timeout=5))
    async with serving(create_app(settings)) as client:
        nats_server.stop()
        deadline = time.monotonic() + 10
        while (await client.get("/readyz")).status_code != 503:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        started = time.monotonic()
        response = await client.get("/api/v1/events")
        waited = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["retry-after"]
        history = await client.get("/api/v1/events/history")
        assert history.status_code == 503
        assert waited < 2.5  # not after the 5 s request timeout: the edge knows it is disconnected
        nats_server.start()
