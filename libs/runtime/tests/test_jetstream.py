import asyncio

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, StreamConfig
from nats.js.errors import KeyNotFoundError, NotFoundError

from eh_runtime.jetstream import (
    AtomicBatchSender,
    BatchRejected,
    KeyWrite,
    OutgoingMessage,
    ack_reply_splits,
    delete_consumer_nowait,
    delivery_position,
    enable_atomic_batches,
    stream_sequence,
)
from eh_runtime.kv import ensure_key_value

V1 = "$JS.ACK.EVENTS.c1.1.42.7.1700000000000000000.3"
V2 = "$JS.ACK.dom.acchash.EVENTS.c1.1.42.7.1700000000000000000.0"
V2_TOKEN = "$JS.ACK.dom.acchash.EVENTS.c1.1.42.7.1700000000000000000.0.rnd"


def test_reply_subjects_v1_and_v2_give_the_same_positions():
    assert delivery_position(V1) == (42, 1700000000000000000, 3)
    assert delivery_position(V2) == (42, 1700000000000000000, 0)
    assert delivery_position(V2_TOKEN) == (42, 1700000000000000000, 0)
    assert [stream_sequence(r) for r in (V1, V2, V2_TOKEN)] == [42, 42, 42]
    assert [ack_reply_splits(r) for r in (V1, V2, V2_TOKEN)] == [4, 4, 5]


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "_INBOX.abc",
        "$JS.ACK.EVENTS.c1.1.42",
        "$JS.FC.EVENTS.a.b.c.d.e.f.g",
        "$JS.FC.d.h.EVENTS.c1.1.42.7.1.0",
    ],
)
def test_what_is_not_an_ack_reply_is_refused(reply):
    with pytest.raises(ValueError, match="not a JetStream ack reply subject"):
        stream_sequence(reply)
    with pytest.raises(ValueError, match="not a JetStream ack reply subject"):
        delivery_position(reply)


@pytest.mark.nats
async def test_the_real_servers_reply_subjects_parse(js):
    await js.add_stream(StreamConfig(name="S", subjects=["s.>"]))
    for n in range(3):
        await js.publish(f"s.{n}", b"x")
    sub = await js.pull_subscribe("s.>", durable="reader")
    msgs = await sub.fetch(3, timeout=2)
    for msg in msgs:
        assert msg.reply is not None
        seq, stored_ns, pending = delivery_position(msg.reply)
        assert (seq, pending) == (msg.metadata.sequence.stream, msg.metadata.num_pending)
        assert abs(stored_ns / 1e9 - msg.metadata.timestamp.timestamp()) < 1e-3


@pytest.mark.nats
async def test_a_consumer_is_deleted_without_waiting(nc, js):
    await js.add_stream(StreamConfig(name="S", subjects=["s.>"]))
    info = await js.add_consumer("S", ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=60))
    await delete_consumer_nowait(nc, "S", info.name)
    async with asyncio.timeout(5):
        while True:
            try:
                await js.consumer_info("S", info.name)
            except NotFoundError:
                break
            await asyncio.sleep(0.02)


@pytest.fixture
async def bucket(js):
    kv = await ensure_key_value(js, KeyValueConfig(bucket="state", history=1))
    await enable_atomic_batches(js, "KV_state")
    await enable_atomic_batches(js, "KV_state")  # idempotent
    return kv


@pytest.fixture
def batches(nc):
    return AtomicBatchSender(nc)


@pytest.mark.nats
async def test_all_writes_are_stored_and_the_last_revision_returned(batches, bucket):
    revision = await batches.write_keys(
        "state", [KeyWrite("a", b"1"), KeyWrite("b", b"2"), KeyWrite("position", b"7")], timeout=2
    )
    assert (await bucket.get("a")).value == b"1"
    assert (await bucket.get("b")).value == b"2"
    assert (await bucket.get("position")).revision == revision


@pytest.mark.nats
async def test_a_failed_expectation_stores_nothing(batches, bucket):
    first = await batches.write_keys("state", [KeyWrite("position", b"1", expected_revision=0)], timeout=2)
    stale = KeyWrite("position", b"2", expected_revision=first + 5)
    with pytest.raises(BatchRejected) as rejected:
        await batches.write_keys("state", [KeyWrite("a", b"x"), stale], timeout=2)
    assert rejected.value.wrong_revision
    with pytest.raises(KeyNotFoundError):
        await bucket.get("a")
    second = await batches.write_keys(
        "state", [KeyWrite("a", b"x"), KeyWrite("position", b"2", expected_revision=first)], timeout=2
    )
    assert (await bucket.get("a")).value == b"x"
    assert (await bucket.get("position")).revision == second


@pytest.mark.nats
async def test_a_removed_key_is_gone_and_can_be_written_again(batches, bucket):
    await batches.write_keys("state", [KeyWrite("a", b"1")], timeout=2)
    await batches.write_keys("state", [KeyWrite("a", None), KeyWrite("b", b"2")], timeout=2)
    with pytest.raises(KeyNotFoundError):
        await bucket.get("a")
    assert sorted(await bucket.keys()) == ["b"]
    await batches.write_keys("state", [KeyWrite("a", b"again")], timeout=2)
    assert (await bucket.get("a")).value == b"again"


@pytest.mark.nats
async def test_batch_size_is_checked_before_sending(batches, bucket):
    with pytest.raises(ValueError, match="1 to 1000"):
        await batches.write_keys("state", [], timeout=2)
    with pytest.raises(ValueError, match="1 to 1000"):
        await batches.write_keys("state", [KeyWrite(f"k{i}", b"v") for i in range(1001)], timeout=2)


@pytest.mark.nats
async def test_a_batch_to_a_missing_stream_is_refused_by_name(batches, nc):
    with pytest.raises(BatchRejected, match="the NOPE stream does not exist"):
        await batches.send("NOPE", [OutgoingMessage("nope.1", "id-1", b"x")], timeout=2)
