import json

import pytest
from nats.js.api import StreamConfig

from eh_contracts.envelope import parse_events
from eh_contracts.examples import SEED_EXAMPLES
from eh_runtime.connection import NatsConnection
from eh_runtime.event_publisher import EventPublisher, StoreUnavailable
from eh_runtime.settings import NatsSettings, StreamSettings
from eh_runtime.stream import EVENTS_STREAM

pytestmark = pytest.mark.nats


def metrics(count: int, prefix: str = "m") -> list:
    body = [
        SEED_EXAMPLES["node_metrics"] | {"id": f"{prefix}-{i}", "resource_id": f"n-{i % 7}"}
        for i in range(count)
    ]
    return parse_events(json.dumps(body).encode())


@pytest.fixture
async def publisher(nats_url, events_stream):
    connection = NatsConnection(NatsSettings(url=nats_url), "test")
    connection.start()
    await connection.wait_ready(5)
    yield EventPublisher(connection, StreamSettings(ttl_node_metrics=3600, ttl_node_status=0))
    await connection.close()


async def publish(publisher, events):
    return await publisher.publish(events, [e.to_json() for e in events])


async def test_a_large_batch_is_stored_in_order_with_contiguous_sequences(publisher, js):
    events = metrics(2500)
    outcomes = await publish(publisher, events)
    assert [o.ack.seq for o in outcomes] == list(range(1, 2501))
    assert not any(o.ack.duplicate for o in outcomes)
    stored = await js.get_msg(EVENTS_STREAM, 1234)
    assert stored.headers["Nats-Msg-Id"] == "m-1233"
    assert stored.subject == "events.node_metrics.n-1"
    assert json.loads(stored.data)["id"] == "m-1233"


async def test_each_type_gets_its_ttl_header(publisher, js):
    status = parse_events(json.dumps(SEED_EXAMPLES["node_status"]).encode())
    await publish(publisher, metrics(1) + status)
    assert (await js.get_msg(EVENTS_STREAM, 1)).headers["Nats-TTL"] == "3600"
    assert "Nats-TTL" not in (await js.get_msg(EVENTS_STREAM, 2)).headers


async def test_a_retry_reports_duplicates_with_their_first_sequence(publisher, js):
    first = await publish(publisher, metrics(5))
    mixed = metrics(5) + metrics(3, prefix="new")
    again = await publish(publisher, mixed)
    assert [bool(o.ack.duplicate) for o in again] == [True] * 5 + [False] * 3
    assert [o.ack.seq for o in again[:5]] == [o.ack.seq for o in first]
    assert [o.ack.seq for o in again[5:]] == [6, 7, 8]
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 8


async def test_without_atomic_batches_on_the_stream_events_go_one_by_one(nats_url, js):
    await js.add_stream(StreamConfig(name=EVENTS_STREAM, subjects=["events.>"], allow_msg_ttl=True))
    connection = NatsConnection(NatsSettings(url=nats_url), "test")
    connection.start()
    await connection.wait_ready(5)
    try:
        outcomes = await publish(EventPublisher(connection), metrics(10))
    finally:
        await connection.close()
    assert [o.ack.seq for o in outcomes] == list(range(1, 11))


async def test_not_connected_is_store_unavailable(nats_url):
    connection = NatsConnection(NatsSettings(url=nats_url), "test")
    with pytest.raises(StoreUnavailable, match="not connected"):
        await publish(EventPublisher(connection), metrics(1))
