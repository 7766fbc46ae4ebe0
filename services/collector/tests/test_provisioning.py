"""What the collector owns and someone deletes while it runs is provisioned again, and said."""

import asyncio
import json
import time

import pytest
from nats.js.errors import BucketNotFoundError

from collector.heartbeats import HEARTBEAT_BUCKET
from collector.resource_states import STATE_BUCKET
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats


def node(state: str, node_id: str = "node-001") -> dict:
    return {"event": "node_status", "resource_id": node_id, "data": {"new_state": state}}


async def until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("bucket", [STATE_BUCKET, HEARTBEAT_BUCKET])
async def test_a_deleted_bucket_is_provisioned_again(collector, js, bucket):
    assert (await collector.post("/api/v1/events", json=node("online"))).status_code == 202
    await js.delete_key_value(bucket)

    async def exists_again():
        try:
            return await js.key_value(bucket)
        except BucketNotFoundError:
            return None

    await until(exists_again)

    async def serving_again():
        return (await collector.post("/api/v1/nodes/node-3/heartbeat", json={})).status_code == 202

    await until(serving_again)
    response = await collector.post("/api/v1/events", json=node("offline", "node-002"))
    assert response.status_code == 202
    assert response.json()["events"][0]["status"] == "stored"
    assert (await collector.get("/readyz")).status_code == 200


async def test_a_deleted_stream_is_created_again_and_readiness_says_it_meanwhile(collector, js):
    await js.delete_stream(EVENTS_STREAM)

    async def not_ready():
        response = await collector.get("/readyz")
        return response if response.status_code == 503 else None

    checks = (await until(not_ready)).json()["checks"]
    assert "EVENTS" in checks["stream"] or "EVENTS" in checks["provisioning"]

    async def ready():
        return (await collector.get("/readyz")).status_code == 200

    await until(ready)
    response = await collector.post("/api/v1/events", json=node("online"))
    assert response.status_code == 202
    assert response.json()["events"][0]["seq"] == 1  # a new stream


async def test_garbage_in_the_state_bucket_or_on_a_status_subject_does_not_stop_status_reports(collector, js):
    kv = await js.key_value(STATE_BUCKET)
    await kv.put("node.node-009", b"not json at all")
    await kv.put("node.node-010", b'["a list"]')
    listing = await collector.get("/api/v1/resources/node")
    assert listing.status_code == 200
    for node_id in ("node-009", "node-010"):
        response = await collector.post("/api/v1/events", json=node("online", node_id))
        assert response.status_code == 202, response.text
        assert response.json()["events"][0]["status"] == "stored"
    # a transition claimed but not recorded, while someone stored garbage on its subject
    claimed = {
        "state": "offline",
        "event_id": "pending-1",
        "seq": None,
        "claimed_at": "2026-01-01T00:00:00Z",
        "event": {"id": "pending-1", "event": "node_status", "resource_id": "node-011",
                  "timestamp": "2026-01-01T00:00:00Z", "data": {"new_state": "offline"}},
    }  # fmt: skip
    await kv.put("node.node-011", json.dumps(claimed).encode())
    await js.publish("events.node_status.node-011", b"not json at all", stream=EVENTS_STREAM)
    response = await collector.post("/api/v1/events", json=node("online", "node-011"))
    assert response.status_code == 202, response.text
    assert response.json()["events"][0]["status"] == "stored"
    assert (await collector.get("/api/v1/resources/node/node-011")).json()["state"] == "online"
