"""The per-client queues: holding, release at a sequence, history backpressure, overflow."""

import asyncio

import pytest

from eh_contracts.subjects import SubjectFilter
from sse_edge.fanout import ClientClosed, ClientStream, FanoutIndex
from sse_edge.time_window import TimeWindow


def frame(seq: int) -> bytes:
    return b"id: %d\n\n" % seq


def client(max_bytes: int = 10_000, window: TimeWindow | None = None) -> ClientStream:
    return ClientStream(SubjectFilter(), max_bytes, "test", window)


def test_a_holding_client_queues_live_frames_without_writing_them():
    c = client()
    assert c.offer(1, frame(1))
    assert not c.wake.is_set()
    assert c.take() == b""


async def test_release_drops_what_history_covered_and_orders_history_marker_live():
    c = client()
    for seq in (3, 4, 5, 6):
        c.offer(seq, frame(seq))
    await c.push_history(frame(2))
    await c.push_history(frame(3))
    await c.push_history(frame(4))
    c.release(4, b"caught-up\n\n")
    c.offer(4, frame(4))  # late duplicate from the live feed: ignored
    c.offer(7, frame(7))
    assert c.take() == frame(2) + frame(3) + frame(4) + b"caught-up\n\n" + frame(5) + frame(6) + frame(7)


async def test_history_waits_for_the_writer_when_a_buffer_is_queued():
    c = client(max_bytes=30)
    await c.push_history(b"x" * 30)
    blocked = asyncio.create_task(c.push_history(b"y" * 10))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert c.take() == b"x" * 30
    await asyncio.wait_for(blocked, 1)
    assert c.take() == b"y" * 10


async def test_closing_stops_a_waiting_replay():
    c = client(max_bytes=10)
    await c.push_history(b"x" * 10)
    blocked = asyncio.create_task(c.push_history(b"y"))
    await asyncio.sleep(0.01)
    c.close("disconnected")
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(blocked, 1)


def test_too_many_live_bytes_overflow_the_client():
    c = client(max_bytes=25)
    c.release(0)
    assert c.offer(1, b"a" * 20)
    assert not c.offer(2, b"b" * 20)
    assert c.close_reason == "overflow"
    assert not c.offer(3, b"c")


def test_the_time_window_applies_to_live_frames():
    from datetime import UTC, datetime

    c = client(window=TimeWindow(start=datetime(2024, 3, 20, 10, tzinfo=UTC)))
    c.release(0)
    assert not c.offer(1, b'data: {"id":"a","event":"x","timestamp":"2024-03-20T09:59:59Z"}\n\n')
    assert c.offer(2, b'data: {"id":"a","event":"x","timestamp":"2024-03-20T10:00:00.5Z"}\n\n')


def test_the_index_offers_each_event_once_to_each_matching_client():
    index = FanoutIndex()
    everything = ClientStream(SubjectFilter(), 10_000, "a")
    pair = ClientStream(SubjectFilter.of(["node_status", "system_log"], ["n1", "n2"]), 10_000, "b")
    other = ClientStream(SubjectFilter.of(resource_ids=["n3"]), 10_000, "c")
    for c in (everything, pair, other):
        index.add(c)
        c.release(0)
    assert index.publish("node_status", "n1", 1, frame(1)) == 2
    assert index.publish("node_metrics", "n1", 2, frame(2)) == 1
    assert pair.take() == frame(1)
    index.remove(pair)
    assert index.publish("node_status", "n1", 3, frame(3)) == 1
    assert len(index) == 2


def test_stream_position_reads_v1_and_v2_reply_subjects():
    from sse_edge.stream_history import stream_position

    assert stream_position("$JS.ACK.EVENTS.c1.1.42.7.1700000000000000000.3") == (42, 3)
    assert stream_position("$JS.ACK.dom.acchash.EVENTS.c1.1.42.7.1700000000000000000.0.rnd") == (42, 0)
