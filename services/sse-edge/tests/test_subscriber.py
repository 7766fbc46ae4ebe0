"""Clients and their filter groups: holding, release, shared logs, coalescing, conflation, overflow."""

import asyncio
import gc

import pytest

from eh_contracts.subjects import SubjectFilter
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.subscriber import Subscriber, SubscriberClosed
from sse_edge.time_window import TimeWindow


def frame(seq: int) -> bytes:
    return b"id: %d\n\n" % seq


def event(seq: int, key: str | None = None, body: bytes | None = None) -> FramedEvent:
    return FramedEvent(seq, body if body is not None else frame(seq), key, 0.0)


def registered(
    index: FanoutIndex | None = None,
    subject_filter: SubjectFilter | None = None,
    window: TimeWindow | None = None,
    max_bytes: int = 10_000,
) -> tuple[FanoutIndex, Subscriber]:
    index = index or FanoutIndex(max_bytes)
    c = Subscriber(subject_filter or SubjectFilter(), max_bytes, "test", window)
    index.add(c)
    return index, c


def live(
    index: FanoutIndex, *events: FramedEvent, event_type: str = "node_status", resource: str = "n1"
) -> None:
    for e in events:
        index.publish(event_type, resource, e)


def test_a_holding_client_keeps_live_frames_without_writing_them():
    index, c = registered()
    live(index, event(1))
    assert not c.woken
    assert c.take() == (b"", 0, 0.0)


async def test_release_drops_what_history_covered_and_orders_history_marker_live():
    index, c = registered()
    live(index, *(event(seq) for seq in (3, 4, 5, 6)))
    await c.push_history(frame(2))
    await c.push_history(frame(3))
    await c.push_history(frame(4))
    c.release(4, b"caught-up\n\n")
    live(index, event(7))
    chunk, count, _ = c.take()
    assert chunk == frame(2) + frame(3) + frame(4) + b"caught-up\n\n" + frame(5) + frame(6) + frame(7)
    assert count == 3


def test_events_the_feed_delivers_late_below_the_release_point_are_skipped():
    # The replay read the stream up to 9 while the feed had only delivered up to 5.
    index, c = registered()
    live(index, event(5))
    c.release(9)
    live(index, event(6), event(9), event(10))
    assert c.take()[0] == frame(10)
    live(index, event(11))
    assert c.take()[0] == frame(11)


async def test_history_waits_for_the_writer_when_a_buffer_is_queued():
    _, c = registered(max_bytes=30)
    await c.push_history(b"x" * 30)
    blocked = asyncio.create_task(c.push_history(b"y" * 10))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert c.take()[0] == b"x" * 30
    await asyncio.wait_for(blocked, 1)
    assert c.take()[0] == b"y" * 10


async def test_closing_stops_a_waiting_replay():
    _, c = registered(max_bytes=10)
    await c.push_history(b"x" * 10)
    blocked = asyncio.create_task(c.push_history(b"y"))
    await asyncio.sleep(0.01)
    c.close("disconnected")
    with pytest.raises(SubscriberClosed):
        await asyncio.wait_for(blocked, 1)


def test_clients_with_one_filter_share_one_log_and_one_joined_chunk():
    index, a = registered()
    _, b = registered(index)
    a.release(0)
    b.release(0)
    assert index.group_count == 1
    live(index, event(1), event(2))
    chunk_a, chunk_b = a.take()[0], b.take()[0]
    assert chunk_a == frame(1) + frame(2)
    assert chunk_a is chunk_b


def test_a_group_log_holds_no_object_per_event_for_the_garbage_collector():
    """Tracked objects per logged event made every young collection walk the logs (a 10-15 ms
    pause of the edge at 10,000 events/s): the log is kept in columns."""
    index, c = registered(max_bytes=10_000_000)
    c.release(0)
    gc.collect()
    tracked_before = len(gc.get_objects())
    live(index, *(event(seq, "node_metrics.n1") for seq in range(1, 10_001)))
    assert c.group is not None
    assert c.group.end == 10_000
    assert len(gc.get_objects()) - tracked_before < 100
    chunk, count, _ = c.take()
    assert count == 10_000
    assert chunk == b"".join(frame(seq) for seq in range(1, 10_001))


def test_coalescing_keeps_order_across_wakeups():
    index, c = registered()
    c.release(0)
    written = b""
    for seq in range(1, 200):
        live(index, event(seq))
        if seq % 7 == 0:
            written += c.take()[0]
    written += c.take()[0]
    assert written == b"".join(frame(seq) for seq in range(1, 200))


async def test_a_parked_writer_is_woken_once_by_the_next_event():
    index, c = registered()
    c.release(0)
    c.take()
    writer = asyncio.ensure_future(c.park())
    await asyncio.sleep(0)
    assert c.parked
    assert not c.woken
    assert not writer.done()
    live(index, event(1), event(2))
    assert not c.woken, "told once per turn of the loop, after the appends, not during one"
    await asyncio.sleep(0)
    assert c.woken
    assert not c.parked
    await asyncio.wait_for(writer, 1)
    assert c.take()[0] == frame(1) + frame(2)


def test_a_client_far_behind_on_metrics_keeps_the_latest_per_resource():
    size = len(frame(100))
    index, slow = registered(max_bytes=size * 10)
    _, fast = registered(index, max_bytes=size * 10)
    slow.release(0)
    fast.release(0)
    seq = 0
    for _ in range(20):
        for node in ("n1", "n2", "n3"):
            seq += 1
            index.publish(
                "node_metrics", node, event(seq, key=f"events.node_metrics.{node}", body=frame(100 + seq))
            )
        fast.take()
    assert slow.close_reason is None
    chunk = slow.take()[0]
    ids = [int(line[4:]) for line in chunk.decode().split("\n\n") if line]
    # Older samples were dropped, what is left is in stream order and ends with every node's newest.
    assert len(ids) < 20
    assert ids == sorted(ids)
    assert ids[-3:] == [100 + seq - 2, 100 + seq - 1, 100 + seq]
    assert len(chunk) <= size * 10 * 2.25  # backlog (a buffer) + log (a buffer and slack)


def test_a_client_far_behind_on_other_events_overflows_and_stops_pinning_the_log():
    index, slow = registered(max_bytes=200)
    _, fast = registered(index, max_bytes=200)
    slow.release(0)
    fast.release(0)
    for seq in range(1, 100):
        live(index, event(seq))
        fast.take()
    assert slow.close_reason == "overflow"
    assert fast.close_reason is None
    group = fast.group
    assert group is not None
    assert slow not in group.readers
    assert group.pending_bytes(fast.pos) == 0


def test_the_time_window_applies_to_live_frames():
    from datetime import UTC, datetime

    index, c = registered(window=TimeWindow(start=datetime(2024, 3, 20, 10, tzinfo=UTC)))
    c.release(0)
    early = b'data: {"id":"a","event":"x","timestamp":"2024-03-20T09:59:59Z"}\n\n'
    late = b'data: {"id":"a","event":"x","timestamp":"2024-03-20T10:00:00.5Z"}\n\n'
    live(index, event(1, body=early), event(2, body=late))
    assert c.take()[0] == late


def test_the_index_offers_each_event_once_to_each_matching_group():
    index, everything = registered()
    _, pair = registered(index, SubjectFilter.of(["node_status", "system_log"], ["n1", "n2"]))
    _, other = registered(index, SubjectFilter.of(resource_ids=["n3"]))
    for c in (everything, pair, other):
        c.release(0)
    live(index, event(1), event_type="node_status", resource="n1")
    live(index, event(2), event_type="node_metrics", resource="n1")
    assert pair.take()[0] == frame(1)
    assert everything.take()[0] == frame(1) + frame(2)
    assert other.take()[0] == b""
    index.remove(pair)
    assert index.group_count == 2
    assert len(index) == 2


def test_a_conflated_backlog_is_written_once():
    index, c = registered(max_bytes=200)
    c.release(0)
    for seq in range(1, 60):
        node = f"n{seq % 3}"
        index.publish("node_metrics", node, event(seq, key=node))
    first = c.take()[0]
    live(index, event(60))
    assert c.take()[0] == frame(60)
    assert frame(59) in first
