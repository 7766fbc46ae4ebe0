"""State transitions: old state filled from the bucket, repeats not stored, concurrency safe."""

import asyncio
import itertools
import json

import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats


def node(state: str, node_id: str = "node-001", **data) -> dict:
    return {"event": "node_status", "resource_id": node_id, "data": {"new_state": state, **data}}


def container(state: str, container_id: str = "c-1") -> dict:
    return {"event": "container_status", "resource_id": container_id, "data": {"new_state": state}}


async def stored(js) -> list[dict]:
    info = await js.stream_info(EVENTS_STREAM)
    return [json.loads((await js.get_msg(EVENTS_STREAM, s)).data) for s in range(1, info.state.last_seq + 1)]


async def test_old_state_is_filled_and_repeats_are_not_events(collector, js):
    results = []
    for state in ("online", "online", "draining", "draining", "offline"):
        response = await collector.post("/api/v1/events", json=node(state))
        assert response.status_code == 202
        results.append(response.json()["events"][0])
    assert [r["status"] for r in results] == ["stored", "unchanged", "stored", "unchanged", "stored"]
    assert results[1]["seq"] == results[0]["seq"]  # the event that made the current state
    events = await stored(js)
    assert [(e["data"].get("old_state"), e["data"]["new_state"]) for e in events] == [
        ("unknown", "online"),
        ("online", "draining"),
        ("draining", "offline"),
    ]


async def test_an_old_state_the_producer_sends_is_kept(collector, js):
    await collector.post("/api/v1/events", json=node("online"))
    await collector.post("/api/v1/events", json=node("offline", old_state="maintenance"))
    assert [e["data"]["old_state"] for e in await stored(js)] == ["unknown", "maintenance"]


async def test_pipelines_without_a_known_status_get_no_old_status(collector, js):
    event = {"event": "pipeline_status", "resource_id": "p-1", "data": {"new_status": "running"}}
    await collector.post("/api/v1/events", json=event)
    await collector.post("/api/v1/events", json=event | {"data": {"new_status": "completed"}})
    assert [e["data"].get("old_status") for e in await stored(js)] == [None, "running"]


async def test_a_batch_of_transitions_for_one_resource_is_applied_in_order(collector, js):
    batch = [container(s) for s in ("created", "running", "running", "exited", "exited", "removed")]
    response = await collector.post("/api/v1/events", json=batch)
    statuses = [e["status"] for e in response.json()["events"]]
    assert statuses == ["stored", "stored", "unchanged", "stored", "unchanged", "stored"]
    chain = [(e["data"]["old_state"], e["data"]["new_state"]) for e in await stored(js)]
    assert chain == [
        ("unknown", "created"),
        ("created", "running"),
        ("running", "exited"),
        ("exited", "removed"),
    ]


async def test_concurrent_reports_lose_no_transition(collector, js):
    """Many clients flip one node at once: the stored chain is unbroken (each old = previous new)."""
    states = ["online", "offline", "draining", "maintenance"]

    async def client(k: int) -> list[str]:
        statuses = []
        for i in range(15):
            response = await collector.post("/api/v1/events", json=node(states[(k + i) % 4]))
            statuses.append(response.json()["events"][0]["status"])
        return statuses

    results = await asyncio.gather(*(client(k) for k in range(8)))
    events = await stored(js)
    stored_count = sum(r.count("stored") for r in results)
    assert stored_count == len(events)
    assert events[0]["data"]["old_state"] == "unknown"
    for before, after in itertools.pairwise(events):
        assert after["data"]["old_state"] == before["data"]["new_state"]
        assert after["data"]["new_state"] != after["data"]["old_state"]
    current = (await collector.get("/api/v1/resources/node/node-001")).json()
    assert current["state"] == events[-1]["data"]["new_state"]


async def test_a_retried_transition_is_a_duplicate_not_a_new_event(collector, js):
    first = await collector.post("/api/v1/events", json=node("online") | {"id": "t-1"})
    again = await collector.post("/api/v1/events", json=node("online") | {"id": "t-1"})
    assert again.json()["events"][0] == {
        "index": 0,
        "status": "duplicate",
        "id": "t-1",
        "seq": first.json()["events"][0]["seq"],
    }
    assert len(await stored(js)) == 1


async def test_resources_are_listed_with_the_stream_sequence_they_were_read_at(collector, js):
    await collector.post("/api/v1/events", json=[node("online", "node-a"), node("offline", "node-b")])
    await collector.post("/api/v1/events", json=[SEED_EXAMPLES["node_metrics"], container("running")])
    listing = await collector.get("/api/v1/resources/node")
    assert listing.status_code == 200
    body = listing.json()
    assert body["stream_seq"] == 4
    assert [(r["id"], r["state"]) for r in body["resources"]] == [("node-a", "online"), ("node-b", "offline")]
    assert sorted(r["seq"] for r in body["resources"]) == [1, 2]  # two resources: stored concurrently
    assert body["resources"][0]["event"]["data"]["new_state"] == "online"
    one = await collector.get("/api/v1/resources/container/c-1")
    assert (one.json()["state"], one.json()["stream_seq"]) == ("running", 4)
    assert (await collector.get("/api/v1/resources/pipeline/none")).status_code == 404
    bad_kind = await collector.get("/api/v1/resources/planet")
    assert bad_kind.status_code == 422
    assert bad_kind.json()["detail"][0]["field"] == "kind"
    bad_id = await collector.get("/api/v1/resources/node/a.b")
    assert bad_id.status_code == 422
    assert bad_id.json()["detail"][0]["field"] == "resource_id"


async def claim_pending(js, node_id: str, event: dict) -> None:
    """A transition claimed in the bucket by a collector that died before storing it."""
    kv = await js.key_value("resource_states")
    value = {
        "state": event["data"]["new_state"],
        "event_id": event["id"],
        "seq": None,
        "claimed_at": "",
        "event": event,
    }
    await kv.put(f"node.{node_id}", json.dumps(value).encode())


ONLINE = {
    "id": "claimed-1",
    "event": "node_status",
    "timestamp": "2024-03-20T10:00:00Z",
    "resource_id": "node-p",
    "data": {"old_state": "unknown", "new_state": "online"},
}


async def test_a_pending_transition_is_stored_before_the_next_one(collector, js):
    await claim_pending(js, "node-p", ONLINE)
    response = await collector.post("/api/v1/events", json=node("offline", "node-p"))
    assert response.json()["events"][0]["status"] == "stored"
    events = await stored(js)
    assert (events[0]["id"], events[0]["data"]["new_state"]) == ("claimed-1", "online")
    assert (events[1]["data"]["old_state"], events[1]["data"]["new_state"]) == ("online", "offline")


async def test_a_pending_transition_already_stored_is_not_stored_again(nats_url, js, collector_settings):
    """Its event made it to the stream longer ago than the duplicate window: no second copy."""
    from collector.app import create_app
    from eh_devtools.pytest_plugin import serving, store_event
    from eh_runtime.settings import StreamSettings

    settings = collector_settings(nats_url, stream=StreamSettings(duplicate_window=1))
    async with serving(create_app(settings)) as client:
        seq = await store_event(js, ONLINE)
        await asyncio.sleep(2.5)  # the id is forgotten by the deduplication (purged within 2 windows)
        await claim_pending(js, "node-p", ONLINE)
        response = await client.post("/api/v1/events", json=node("offline", "node-p"))
        assert response.json()["events"][0]["status"] == "stored"
        events = await stored(js)
        assert [e["id"] for e in events].count("claimed-1") == 1
        assert events[-1]["data"]["old_state"] == "online"
        assert (await client.get("/api/v1/resources/node/node-p")).json()["seq"] == seq + 1


async def test_listings_leave_no_consumers_behind(collector, js):
    """990 listings once left ~1,000 consumers alive for five minutes, and the server's consumer
    limit then failed every listing: each listing now deletes its own, and a few run at a time."""
    for i in range(3):
        await collector.post("/api/v1/events", json=node("online", f"node-{i}"))

    async def listing() -> int:
        # The burst below queues behind the collector's few listing slots: the last of the 60
        # waits for ~15 listings before its own, seconds on a loaded machine (not the client's 10 s).
        response = await collector.get("/api/v1/resources/node", timeout=120)
        assert response.status_code == 200, response.text
        return len(response.json()["resources"])

    for _ in range(30):
        assert await listing() == 3
    assert set(await asyncio.gather(*(listing() for _ in range(60)))) == {3}

    consumers = (await js.stream_info("KV_resource_states")).state.consumer_count
    assert consumers <= 1  # the pending-transition sweep's own listing, at most
