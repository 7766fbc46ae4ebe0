"""PATCH /api/v1/subscriptions/{id}: filters changed on an open stream, atomically at a sequence."""

import asyncio
import json
import socket

import httpx
import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.subjects import SubjectFilter
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.auth.settings import AuthSettings
from eh_runtime.auth.token import sign_token
from sse_edge.app import create_app
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


@pytest.mark.nats
async def test_a_change_while_the_stream_still_replays_its_history_is_a_409(
    nats_url, js, events_stream, edge_settings
):
    """Until `stream.caught_up` the stream is not on the live feed yet, so there is no sequence to
    switch at: the change is refused with 409 and succeeds once the history is through."""
    history = [await store_event(js, status("node-a", n)) for n in range(2000)]  # ~800 KB
    app = create_app(edge_settings(nats_url, client_buffer_bytes=16 * 1024))
    # Small buffers at both ends of the socket: a client that stops reading holds the replay
    # after some tens of kilobytes, not after megabytes of loopback autotuning.
    small = httpx.AsyncHTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    async with (
        serving(app, send_buffer_bytes=4096) as edge,
        httpx.AsyncClient(base_url=edge.base_url, transport=small, timeout=10) as reader,
    ):
        params = {"start_time": "2000-01-01T00:00:00Z"}
        async with reader.stream("GET", "/api/v1/events", params=params) as response:
            messages = read_sse(response)
            ready = await next_event(messages)
            assert ready.event == "stream.ready"
            path = f"/api/v1/subscriptions/{ready.json()['subscription_id']}"
            refused = await edge.patch(path, json={"resource_id": ["node-b"]})
            assert refused.status_code == 409
            assert "stream.caught_up" in refused.json()["detail"]
            replayed = []
            async with asyncio.timeout(30):
                while (message := await next_event(messages)).event != "stream.caught_up":
                    replayed.append(int(message.id))
            assert replayed == history  # the refused change changed nothing
            changed = await edge.patch(path, json={"resource_id": ["node-b"]})
            assert changed.status_code == 200
            assert changed.json()["from_seq"] == history[-1] + 1
            assert (await next_event(messages)).event == "stream.filters_changed"


@pytest.mark.nats
async def test_a_subscription_held_by_another_replica_is_a_404(nats_url, events_stream, edge_settings):
    """Two edges on one NATS: the stream lives on the first, so the second does not know its id
    (the client then reopens its stream with the new filters and its Last-Event-ID)."""
    async with (
        serving(create_app(edge_settings(nats_url))) as first,
        serving(create_app(edge_settings(nats_url))) as second,
    ):
        async with first.stream("GET", "/api/v1/events") as response:
            path = f"/api/v1/subscriptions/{await open_live(read_sse(response))}"
            elsewhere = await second.patch(path, json={"resource_id": ["node-b"]})
            assert elsewhere.status_code == 404
            assert "on this edge" in elsewhere.json()["detail"]
            assert (await first.patch(path, json={"resource_id": ["node-b"]})).status_code == 200


SECRET = "subscription-test-secret-0123456789abcdef"
NODES = {"subscribe": {"types": ["node_status"], "resources": ["node-a", "node-b"]}}


def bearer(subject: str, scope: dict = NODES) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_token(SECRET, subject, scope)}"}


@pytest.mark.nats
async def test_only_the_streams_holder_changes_it_and_never_past_its_claim(
    nats_url, events_stream, edge_settings
):
    auth = AuthSettings(mode="jwt", secret=SECRET, leeway=0)
    async with serving(create_app(edge_settings(nats_url, auth=auth))) as edge:
        params = {"resource_id": "node-a"}
        async with edge.stream("GET", "/api/v1/events", params=params, headers=bearer("dash")) as response:
            path = f"/api/v1/subscriptions/{await open_live(read_sse(response))}"
            change = {"resource_id": ["node-b"]}
            assert (await edge.patch(path, json=change)).status_code == 401
            # Another holder gets the answer of an id that does not exist: nothing to learn from it.
            assert (await edge.patch(path, json=change, headers=bearer("other"))).status_code == 404
            wider = await edge.patch(path, json={"resource_id": ["node-c"]}, headers=bearer("dash"))
            assert wider.status_code == 403
            (detail,) = wider.json()["detail"]
            assert (detail["field"], detail["in"]) == ("resource_id", "body")
            # The holder with a fresh token (same subject) is the same holder.
            assert (await edge.patch(path, json=change, headers=bearer("dash"))).status_code == 200


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
