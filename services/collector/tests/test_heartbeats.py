"""Heartbeats: online on the first one, node_metrics from the body, offline once after the timeout."""

import asyncio
import contextlib
import json

import pytest
import structlog.testing

from collector.app import create_app
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats


async def stored(js, subject_prefix="events.") -> list[dict]:
    info = await js.stream_info(EVENTS_STREAM)
    if info.state.messages == 0:
        return []
    messages = [
        await js.get_msg(EVENTS_STREAM, s) for s in range(info.state.first_seq, info.state.last_seq + 1)
    ]
    return [json.loads(m.data) for m in messages if m.subject.startswith(subject_prefix)]


async def wait_for(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_the_first_heartbeat_brings_a_node_online_and_later_ones_do_not_repeat_it(collector, js):
    first = await collector.post("/api/v1/nodes/node-7/heartbeat", json={"ip": "10.0.0.7"})
    assert first.status_code == 202
    assert first.json()["state"] == "online"
    assert first.json()["transition"]["status"] == "stored"
    again = await collector.post("/api/v1/nodes/node-7/heartbeat", json={})
    assert again.json()["transition"]["status"] == "unchanged"
    (event,) = await stored(js)
    assert event["resource_id"] == "node-7"
    assert event["data"]["old_state"] == "unknown"
    assert event["data"]["new_state"] == "online"
    assert event["data"]["reason"] == "heartbeat_received"
    assert event["data"]["details"]["ip"] == "10.0.0.7"
    assert event["data"]["details"]["last_heartbeat"].endswith("Z")


async def test_metrics_in_a_heartbeat_become_node_metrics(collector, js):
    metrics = SEED_EXAMPLES["node_metrics"]["data"]
    response = await collector.post("/api/v1/nodes/node-8/heartbeat", json={"metrics": metrics})
    assert response.json()["metrics"]["status"] == "stored"
    events = await stored(js, "events.node_metrics.")
    assert [e["data"] for e in events] == [metrics]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/nodes/node.1/heartbeat", {}, "node_id"),
        ("/api/v1/nodes/node-1/heartbeat", {"ip": "not-an-ip"}, "ip"),
        ("/api/v1/nodes/node-1/heartbeat", {"metrics": {"cpu": {"usage": "high"}}}, "metrics.cpu.usage"),
        ("/api/v1/nodes/node-1/heartbeat", {"uptime": 5}, "uptime"),
    ],
)
async def test_bad_heartbeats_are_422_naming_the_field(collector, js, path, body, field):
    response = await collector.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == field
    assert await stored(js) == []


async def test_a_silent_node_goes_offline_exactly_once_with_two_collectors(nats_url, js, collector_settings):
    settings = collector_settings(nats_url, heartbeat_timeout=1)
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(serving(create_app(settings)))
        await stack.enter_async_context(serving(create_app(settings)))
        await first.post("/api/v1/nodes/node-9/heartbeat", json={})

        async def offline_stored():
            return any(e["data"]["new_state"] == "offline" for e in await stored(js))

        await wait_for(offline_stored)
        await asyncio.sleep(1.5)  # room for a second, wrong, offline event
        events = await stored(js)
        assert [(e["data"]["old_state"], e["data"]["new_state"], e["data"]["reason"]) for e in events] == [
            ("unknown", "online", "heartbeat_received"),
            ("online", "offline", "heartbeat_timeout"),
        ]
        assert (
            events[1]["data"]["details"]["last_heartbeat"] == events[0]["data"]["details"]["last_heartbeat"]
        )

        back = await first.post("/api/v1/nodes/node-9/heartbeat", json={})
        assert back.json()["transition"]["status"] == "stored"
        last = (await stored(js))[-1]
        assert (last["data"]["old_state"], last["data"]["new_state"]) == ("offline", "online")


async def test_a_collector_started_after_the_timeout_still_turns_the_node_offline(
    nats_url, js, collector_settings
):
    settings = collector_settings(nats_url, heartbeat_timeout=1)
    async with serving(create_app(settings)) as client:
        await client.post("/api/v1/nodes/node-10/heartbeat", json={})
    await asyncio.sleep(1.5)  # the key expires while no collector runs

    async with serving(create_app(settings)):

        async def offline_stored():
            return len(await stored(js)) == 2

        await wait_for(offline_stored)
    assert (await stored(js))[-1]["data"]["reason"] == "heartbeat_timeout"


async def test_a_steady_heartbeat_keeps_the_node_online(nats_url, js, collector_settings):
    # Beats every 0.4 s for 4 s, twice the timeout: the key never expires.
    async with serving(create_app(collector_settings(nats_url, heartbeat_timeout=2))) as client:
        for _ in range(10):
            await client.post("/api/v1/nodes/node-11/heartbeat", json={})
            await asyncio.sleep(0.4)
    assert [e["data"]["new_state"] for e in await stored(js)] == ["online"]


@pytest.mark.own_server
async def test_a_heartbeat_while_nats_is_down_is_a_503_with_retry_after(nats_server, collector_settings):
    async with serving(create_app(collector_settings(nats_server.url))) as client:
        nats_server.stop()
        response = await client.post("/api/v1/nodes/node-12/heartbeat", json={})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        answer = response.json()
        assert answer["code"] == "store_unavailable"
        assert answer["request_id"] == response.headers["x-request-id"]
        assert "NATS" not in answer["detail"]  # the cause is for the log, not for clients
        nats_server.start()


async def test_heartbeats_are_logged_at_debug_level_other_requests_at_info(collector):
    with structlog.testing.capture_logs() as logs:
        await collector.post("/api/v1/nodes/node-9/heartbeat", json={})
        await collector.post("/api/v1/nodes/bad%20id/heartbeat")  # refused: worth an info line
        await collector.get("/api/v1/resources/node")
    access = [
        (line["log_level"], line["path"], line["status"]) for line in logs if line["event"] == "request"
    ]
    assert access == [
        ("debug", "/api/v1/nodes/node-9/heartbeat", 202),
        ("info", "/api/v1/nodes/bad id/heartbeat", 422),
        ("info", "/api/v1/resources/node", 200),
    ]
