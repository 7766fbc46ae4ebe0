"""Live frames written by the fan-out's flush for parked writers, and the fall-backs to their task.

A stand-in writer (`RecordingWriter`, the part of `SseResponse` the subscriber talks to) records
what the flush writes; a plain loop stands in for the stream's task (`run_task`). The real writer,
over a real uvicorn socket, is covered in test_uvicorn_transport.py and the route tests.
"""

import asyncio

from eh_contracts.event_types import EventType
from eh_contracts.subjects import SubjectFilter
from sse_edge.live.fanout import FanoutIndex
from sse_edge.live.fanout_flush import FanoutFlush
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.subscriber import Subscriber


def frame(seq: int) -> bytes:
    return b"id: %d\n\n" % seq


def event(seq: int) -> FramedEvent:
    return FramedEvent(seq, frame(seq), None, 0.0)


class RecordingWriter:
    """Writes synchronously while `writable`, as `SseResponse.write_now` does."""

    socket_closed = False

    def __init__(self, client: Subscriber, out: list[tuple[str, bytes]]) -> None:
        self.client = client
        self.writable = True
        self.out = out

    @property
    def written(self) -> list[bytes]:
        return [chunk for by, chunk in self.out if by == "flush"]

    def abort(self) -> None:
        raise AssertionError("not stalled")

    def write_now(self, now: float) -> bool:
        if not self.writable:
            return False
        chunk, _count, _oldest = self.client.take()
        if chunk:
            self.out.append(("flush", chunk))
        return True


class Stream:
    """A subscriber with its writer attached and its task running (released, parked)."""

    def __init__(self, index: FanoutIndex, subject_filter: SubjectFilter | None = None) -> None:
        self.client = Subscriber(subject_filter or SubjectFilter(), 10_000, "test")
        index.add(self.client)
        self.out: list[tuple[str, bytes]] = []  # in the order written, by whom
        self.writer = RecordingWriter(self.client, self.out)
        self.client.attach_writer(self.writer)
        self.client.release(0)
        self.task = asyncio.ensure_future(self.run_task())

    async def run_task(self) -> None:
        client = self.client
        while client.close_reason is None:
            chunk, _count, _oldest = client.take()
            if chunk:
                self.out.append(("task", chunk))
            elif client.take_heartbeat():
                self.out.append(("task", b":\n\n"))
            else:
                await client.park()

    @property
    def by_task(self) -> list[bytes]:
        return [chunk for by, chunk in self.out if by == "task"]

    @property
    def received(self) -> bytes:
        """Everything written, both ways, in the order written."""
        return b"".join(chunk for _by, chunk in self.out)


def publish(index: FanoutIndex, *seqs: int, event_type: str = "node_status") -> None:
    for seq in seqs:
        index.publish(event_type, "n1", event(seq))


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_events_of_one_turn_reach_a_parked_writer_in_one_write_without_waking_its_task():
    index = FanoutIndex(10_000)
    streams = [Stream(index) for _ in range(3)]
    await turns()
    assert all(s.client.parked for s in streams)
    publish(index, 1, 2, 3)
    assert not any(s.writer.written for s in streams), "written during the append, not once per turn"
    await turns(1)
    for s in streams:
        assert s.writer.written == [frame(1) + frame(2) + frame(3)]
        assert s.by_task == []
        assert s.client.parked
        assert not s.client.woken
    publish(index, 4)
    await turns(1)
    for s in streams:
        assert s.writer.written[1:] == [frame(4)]
        assert s.by_task == []
        s.task.cancel()


async def test_a_writer_that_cannot_write_now_is_woken_and_later_written_to_directly_again():
    index = FanoutIndex(10_000)
    s = Stream(index)
    await turns()
    s.writer.writable = False  # the socket has not taken the last write
    publish(index, 1, 2)
    await turns()
    assert s.writer.written == []
    assert s.by_task == [frame(1) + frame(2)]
    assert s.client.parked
    s.writer.writable = True
    publish(index, 3)
    await turns()
    assert s.writer.written == [frame(3)]
    assert s.received == b"".join(frame(n) for n in (1, 2, 3))
    s.task.cancel()


async def test_a_writer_already_awake_takes_the_frames_itself():
    index = FanoutIndex(10_000)
    s = Stream(index)
    await turns()
    s.client.request_heartbeat()  # its task wakes, while still parked on the group
    publish(index, 1)
    await turns()
    assert s.writer.written == []
    assert s.by_task == [frame(1), b":\n\n"]
    publish(index, 2)
    await turns()
    assert s.writer.written == [frame(2)]
    s.task.cancel()


async def test_a_stream_closed_before_the_flush_gets_nothing_more_from_it():
    index = FanoutIndex(10_000)
    s = Stream(index)
    await turns()
    publish(index, 1)
    s.client.close("shutdown")
    await turns()
    assert s.writer.written == []
    assert s.task.done()


async def test_a_filter_switch_between_the_append_and_the_flush_stays_exact():
    """Event 1 (old filters) is appended, the filters change at its sequence, then event 2 (new
    filters) comes, all in one turn: the stream gets 1, the marker, 2 — once each, in order."""
    index = FanoutIndex(10_000)
    s = Stream(index, SubjectFilter(types=frozenset({EventType.NODE_STATUS})))
    await turns()
    publish(index, 1)
    new_filter = SubjectFilter(types=frozenset({EventType.SYSTEM_LOG}))
    switched_at = index.change_filters(s.client, new_filter, None, lambda seq: b"switch %d\n\n" % seq)
    assert switched_at == 2
    publish(index, 2, event_type="system_log")
    publish(index, 3, event_type="node_status")  # the old filters no longer apply
    await turns()
    publish(index, 4, event_type="system_log")
    await turns()
    assert s.received == frame(1) + b"switch 2\n\n" + frame(2) + frame(4)
    assert s.writer.written[-1] == frame(4), "back on the direct path after the switch"
    s.task.cancel()


async def test_many_events_over_many_turns_arrive_once_each_in_order():
    index = FanoutIndex(10_000)
    s = Stream(index)
    await turns()
    seq = 0
    for burst in range(200):
        publish(index, *range(seq + 1, seq + 1 + burst % 5))
        seq += burst % 5
        if burst % 7 == 0:
            s.writer.writable = not s.writer.writable
        if burst % 11 == 0:
            s.client.request_heartbeat()
        await asyncio.sleep(0)
    s.writer.writable = True
    await turns()
    publish(index, seq + 1)
    await turns()
    assert s.received.replace(b":\n\n", b"") == b"".join(frame(n) for n in range(1, seq + 2))
    assert s.writer.written, "the flush never wrote"
    assert s.by_task, "the task never wrote"
    assert s.out[-1] == ("flush", frame(seq + 1))
    s.task.cancel()


async def test_a_write_that_fails_closes_the_stream_instead_of_skipping_what_it_took():
    index = FanoutIndex(10_000)
    s = Stream(index)
    await turns()

    def broken(now: float) -> bool:
        s.client.take()
        raise OSError("socket gone")

    s.writer.write_now = broken  # type: ignore[method-assign]
    publish(index, 1)
    await turns()
    assert s.client.close_reason == "write_failed"
    assert s.task.done()


async def test_a_reader_that_fails_does_not_keep_the_others_of_its_turn_waiting():
    told: list[float] = []

    class Broken:
        def frames_arrived(self, now: float) -> None:
            raise RuntimeError("a bug")

    class Waiting:
        def frames_arrived(self, now: float) -> None:
            told.append(now)

    flush = FanoutFlush()
    flush.add({Broken(): None, Waiting(): None})
    flush.add({Waiting(): None})
    await turns(1)
    assert len(told) == 2
