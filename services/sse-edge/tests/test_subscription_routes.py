"""PATCH /api/v1/subscriptions/{id}: filters changed on an open stream, atomically at a sequence."""

import asyncio
import json

import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.subjects import SubjectFilter
from eh_devtools.pytest_plugin import store_event
from eh_devtools.sse_client import next_event, read_sse
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.subscriber import Subscriber


def status(resource_id: str, n: int) -> dict:
    return SEED_EXAMPLES["node_status"] | {"resource_id": resource_id, "id": f"{resource_id}-{n}"}


async def open_live(messages) -> str:
    ready = await next_event(messages)
    assert ready.event == "stream.ready"
    caught_up = await next_event(messages)
    assert caught_up.event == "stream.caught_up"
    subscription_id = ready.json()["subscription_id"]
    assert len(subscription_id) >= 24
    return str(subscription_id)


@pytest.mark.nats
async def test_a_change_under_concurrent_publishing_has_no_gap_and_no_duplicate(edge, js):
    async with edge.stream("GET", "/api/v1/events", params={"resource_id": "node-a"}) as response:
        messages = read_sse(response)
        subscription_id = await open_live(messages)
        stored: list[tuple[int, str]] = []

        async def publish() -> None:
            for n in range(300):
                resource = "node-a" if n % 2 == 0 else "node-b"
                stored.append((await store_event(js, status(resource, n)), resource))
                if n % 10 == 0:
                    await asyncio.sleep(0)

        publisher = asyncio.create_task(publish())
        while len(stored) < 100:
            await asyncio.sleep(0.005)
        answer = await edge.patch(
            f"/api/v1/subscriptions/{subscription_id}", json={"resource_id": ["node-b"]}
        )
        assert answer.status_code == 200, answer.text
        from_seq = answer.json()["from_seq"]
        await publisher
        last = await store_event(js, status("node-b", 999))
        got: list[tuple[int, str]] = []
        marker = None
        async with asyncio.timeout(15):
            while True:
                message = await next_event(messages)
                if message.event == "stream.filters_changed":
                    marker = (len(got), message.json())
                    continue
                seq = int(message.id)
                got.append((seq, json.loads(message.data)["resource_id"]))
                if seq == last:
                    break
    assert marker is not None
    position, changed = marker
    assert changed["from_seq"] == from_seq
    assert changed["filters"] == {"type": [], "resource_id": ["node-b"]}
    assert 1 < from_seq <= last  # the switch fell inside the publishing, not before or after it
    expected_before = [(s, r) for s, r in stored if r == "node-a" and s < from_seq]
    expected_after = [(s, r) for s, r in [*stored, (last, "node-b")] if r == "node-b" and s >= from_seq]
    assert got[:position] == expected_before
    assert got[position:] == expected_after


@pytest.mark.nats
async def test_a_filter_expression_can_be_set_kept_and_cleared(edge, js):
    async with edge.stream("GET", "/api/v1/events", params={"type": "node_status"}) as response:
        messages = read_sse(response)
        subscription_id = await open_live(messages)
        path = f"/api/v1/subscriptions/{subscription_id}"
        answer = await edge.patch(path, json={"filter": 'data.new_state == "offline"'})
        assert answer.json()["filter"] == 'data.new_state == "offline"'
        changed = await next_event(messages)
        assert changed.event == "stream.filters_changed"
        assert changed.json()["filters"] == {"type": ["node_status"], "resource_id": []}
        # Changing the types keeps the expression, checked again against the new types.
        refused = await edge.patch(path, json={"type": ["node_metrics"]})
        assert refused.status_code == 422
        (detail,) = refused.json()["detail"]
        assert (detail["in"], detail["type"]) == ("body", "filter_unknown_field")
        online = await store_event(js, status("n1", 1) | {"data": {"new_state": "online"}})
        offline = await store_event(js, status("n1", 2) | {"data": {"new_state": "offline"}})
        assert int((await next_event(messages)).id) == offline
        cleared = await edge.patch(path, json={"filter": None})
        assert cleared.json()["filter"] is None
        assert (await next_event(messages)).event == "stream.filters_changed"
        again = await store_event(js, status("n1", 3) | {"data": {"new_state": "online"}})
        assert int((await next_event(messages)).id) == again
        assert online < offline < again


@pytest.mark.nats
async def test_unknown_or_closed_subscriptions_are_404_and_bad_bodies_422(edge):
    assert (await edge.patch("/api/v1/subscriptions/nope", json={})).status_code == 404
    async with edge.stream("GET", "/api/v1/events") as response:
        subscription_id = await open_live(read_sse(response))
        path = f"/api/v1/subscriptions/{subscription_id}"
        bad = await edge.patch(path, json={"type": ["nope"], "extra": 1})
        assert bad.status_code == 422
        syntax = await edge.patch(path, json={"filter": "data.cpu.usage >"})
        (detail,) = syntax.json()["detail"]
        assert (syntax.status_code, detail["column"], detail["in"]) == (422, 17, "body")
    for _ in range(100):
        if (await edge.patch(path, json={})).status_code == 404:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("a closed stream's subscription still answers")


def test_a_switch_keeps_the_old_filters_pending_frames_then_the_marker_then_the_new():
    index = FanoutIndex(1 << 20)
    client = Subscriber(SubjectFilter.of([], ["a"]), 1 << 20, "t", subscription_id="s1")
    index.add(client)
    client.release(0)

    def event(seq: int) -> FramedEvent:
        return FramedEvent(seq, b"<%d>" % seq, None, 0.0)

    index.publish("node_status", "a", event(1))
    index.publish("node_status", "b", event(2))
    index.publish("node_status", "a", event(3))
    from_seq = index.change_filters(client, SubjectFilter.of([], ["b"]), None, lambda s: b"<changed %d>" % s)
    assert from_seq == 4
    index.publish("node_status", "a", event(4))
    index.publish("node_status", "b", event(5))
    chunk, _, _ = client.take()
    assert chunk == b"<1><3><changed 4><5>"
    assert index.group_count == 1  # the old group had no one else: forgotten
    assert index.subscription("s1") is client
    index.remove(client)
    assert index.subscription("s1") is None
