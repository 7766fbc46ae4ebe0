"""max_rate= and max_bandwidth=: paced writes carry the newest metrics of each resource, and every
other event."""

import asyncio
import json
import time

import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from sse_edge.app import create_app
from sse_edge.http.write_pace import WritePace, effective


def test_a_request_lowers_the_edges_cap_never_raises_it():
    assert effective(None, 0) is None
    assert effective(5, 0) == 5
    assert effective(None, 10) == 10
    assert effective(50, 10) == 10
    assert effective(2, 10) == 2
    pace = WritePace(max_rate=5, max_bandwidth=1000)
    assert pace.pause_after(100, 0.0) == pytest.approx(0.2)
    assert pace.pause_after(1000, 0.1) == pytest.approx(0.9)
    assert not WritePace().paced


def metrics(node: str, n: int) -> dict:
    return SEED_EXAMPLES["node_metrics"] | {
        "resource_id": node,
        "id": f"{node}-{n}",
        "data": {"cpu": {"usage": float(n % 100)}},
    }


@pytest.mark.nats
async def test_five_updates_a_second_per_node_are_the_latest_state_at_that_pace(edge, js):
    nodes = ["node-1", "node-2"]
    params = {"max_rate": "5"}
    async with edge.stream("GET", "/api/v1/events", params=params) as response:
        messages = read_sse(response)
        ready = await next_event(messages)
        assert (ready.json()["max_rate"], ready.json()["max_bandwidth"]) == (5, None)
        assert (await next_event(messages)).event == "stream.caught_up"
        latest: dict[str, int] = {}
        statuses = []
        started = time.monotonic()
        for n in range(120):  # ~2 s of 60 samples a second per node, and a status now and then
            for node in nodes:
                latest[node] = await store_event(js, metrics(node, n))
            if n % 40 == 0:
                statuses.append(await store_event(js, SEED_EXAMPLES["node_status"] | {"id": f"s{n}"}))
            await asyncio.sleep(1 / 60)
        published_for = time.monotonic() - started
        got: dict[str, list[int]] = {node: [] for node in nodes}
        got_statuses = []
        async with asyncio.timeout(10):
            while any(not got[node] or got[node][-1] != latest[node] for node in nodes):
                message = await next_event(messages)
                if message.event == "node_metrics":
                    got[json.loads(message.data)["resource_id"]].append(int(message.id))
                elif message.event == "node_status":
                    got_statuses.append(int(message.id))
        received_for = time.monotonic() - started
    assert got_statuses == statuses  # never dropped
    for node in nodes:
        assert got[node] == sorted(got[node])
        assert got[node][-1] == latest[node]  # the latest state, in the end
        # At most one sample per node per write, at most 5 writes a second (+1: the first write).
        assert len(got[node]) <= 5 * received_for + 1
        assert len(got[node]) < 120  # conflated: far fewer than were published
    assert published_for < received_for


@pytest.mark.nats
async def test_the_edges_own_cap_applies_to_every_stream(nats_url, events_stream, edge_settings):
    app = create_app(edge_settings(nats_url, max_rate=2, max_bandwidth=1_000_000))
    async with serving(app) as client:
        async with client.stream("GET", "/api/v1/events", params={"max_rate": "50"}) as response:
            ready = await next_event(read_sse(response))
            assert (ready.json()["max_rate"], ready.json()["max_bandwidth"]) == (2, 1_000_000)
        bad = await client.get("/api/v1/events", params={"max_rate": "0"})
        assert bad.status_code == 422
