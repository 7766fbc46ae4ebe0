"""GET /api/v1/events/history: JSON pages, stable while events keep arriving."""

import asyncio
import json

import pytest

from eh_contracts.envelope import parse_events
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import store_event
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats


async def store_fast(js, events: list[dict]) -> list[int]:
    """Store many events as the collector does, with pipelined acks."""
    envelopes = parse_events(json.dumps(events).encode())
    futures = [
        await js.publish_async(e.subject, e.to_json(), stream=EVENTS_STREAM, headers={"Nats-Msg-Id": e.id})
        for e in envelopes
    ]
    return [(await f).seq for f in futures]


def log_event(i: int, resource: str = "log-1") -> dict:
    return SEED_EXAMPLES["system_log"] | {"resource_id": resource, "id": f"evt-{i}"}


async def all_pages(edge, params: dict) -> list[dict]:
    events, cursor = [], None
    while True:
        response = await edge.get(
            "/api/v1/events/history", params=params | ({"cursor": cursor} if cursor else {})
        )
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        cursor = page["next"]
        if cursor is None:
            return events


@pytest.mark.slow
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_pages_through_10000_events_without_loss_or_repeat_while_publishing(edge, js, order):
    stored = await store_fast(js, [log_event(i, f"log-{i % 2}") for i in range(10_000)])
    stop = asyncio.Event()

    async def keep_publishing():
        i = 0
        while not stop.is_set():
            await store_event(js, log_event(100_000 + i, "log-0"))
            i += 1

    publisher = asyncio.create_task(keep_publishing())
    try:
        events = await all_pages(edge, {"limit": 1000, "order": order, "resource_id": "log-0"})
    finally:
        stop.set()
        await publisher
    wanted = [seq for i, seq in enumerate(stored) if i % 2 == 0]
    seqs = [e["seq"] for e in events]
    assert len(seqs) == len(set(seqs)), "an event was repeated"
    if order == "asc":
        # everything stored before the first page, in order; later arrivals may follow
        assert seqs[: len(wanted)] == wanted
        assert seqs == sorted(seqs)
    else:
        # newest first from the moment of the first page: nothing arriving later sneaks in
        assert seqs[-len(wanted) :] == wanted[::-1], (
            len(seqs),
            len(wanted),
            sorted(set(wanted) - set(seqs))[:10],
            seqs[:5],
        )
        assert seqs == sorted(seqs, reverse=True)
    assert all(e["resource_id"] == "log-0" for e in events)


async def test_a_page_holds_envelopes_with_their_sequence(edge, js):
    stored = await store_fast(js, [log_event(i) for i in range(3)])
    response = await edge.get("/api/v1/events/history", params={"limit": 2})
    page = response.json()
    assert [e["seq"] for e in page["events"]] == stored[:2]
    first = page["events"][0]
    assert {k: v for k, v in first.items() if k not in ("seq", "timestamp")} == {
        k: v for k, v in log_event(0).items() if k != "timestamp"
    }
    second = await edge.get("/api/v1/events/history", params={"limit": 2, "cursor": page["next"]})
    assert [e["seq"] for e in second.json()["events"]] == stored[2:]
    assert second.json()["next"] is None


async def test_filters_and_time_range_apply(edge, js):
    events = [
        SEED_EXAMPLES["node_status"] | {"resource_id": "n1"},
        SEED_EXAMPLES["node_metrics"] | {"resource_id": "n1"},
        SEED_EXAMPLES["node_status"] | {"resource_id": "n2"},
    ]
    stored = await store_fast(js, events)
    response = await edge.get("/api/v1/events/history", params={"type": "node_status", "resource_id": "n1"})
    assert [e["seq"] for e in response.json()["events"]] == [stored[0]]
    # The seed's timestamps are from 2024, stored now: far outside the skew allowance of a range
    # query that ends in 2024, which is what the allowance means.
    empty = await edge.get("/api/v1/events/history", params={"start_time": "2030-01-01T00:00:00Z"})
    assert empty.json() == {"events": [], "next": None}


async def test_an_empty_stream_has_an_empty_page(edge):
    response = await edge.get("/api/v1/events/history", params={"order": "desc"})
    assert response.json() == {"events": [], "next": None}


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"limit": 1001}, 422, "limit"),
        ({"order": "sideways"}, 422, "order"),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
        ({"type": "nope"}, 422, "type"),
        ({"start_time": "2024-13-01T00:00:00Z"}, 422, "start_time"),
    ],
)
async def test_bad_parameters_are_4xx_naming_them(edge, params, status, fragment):
    response = await edge.get("/api/v1/events/history", params=params)
    assert response.status_code == status
    assert fragment in response.text


async def test_a_cursor_only_continues_its_own_query(edge, js):
    await store_fast(js, [log_event(i) for i in range(5)])
    page = (await edge.get("/api/v1/events/history", params={"limit": 2})).json()
    other = await edge.get(
        "/api/v1/events/history", params={"limit": 2, "cursor": page["next"], "type": "node_status"}
    )
    assert other.status_code == 400
    assert "another query" in other.json()["detail"]
    reversed_order = await edge.get(
        "/api/v1/events/history", params={"cursor": page["next"], "order": "desc"}
    )
    assert reversed_order.status_code == 400
