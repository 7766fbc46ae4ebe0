"""The ordered read of a stream range (real nats-server): order, range ends, gaps, lost consumers."""

import asyncio

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from eh_runtime.stream import EVENTS_STREAM
from sse_edge.history.jetstream_history import JetStreamHistory
from sse_edge.history.ordered_read import Burst, OrderedRead, StopReading

pytestmark = pytest.mark.nats


async def store(js: JetStreamContext, subjects: list[str], size: int = 64) -> list[int]:
    """One message per subject given, pipelined; their stream sequences."""
    acks = [await js.publish_async(subject, b"x" * size, stream=EVENTS_STREAM) for subject in subjects]
    return [(await ack).seq for ack in acks]


class Collect:
    """A sink that keeps what it is given, optionally taking its time over each burst."""

    def __init__(self, delay: float = 0.0) -> None:
        self.seqs: list[int] = []
        self.subjects: list[str] = []
        self.delay = delay

    def __call__(self, burst: Burst):
        for seq, subject, _ in burst:
            self.seqs.append(int(seq))
            self.subjects.append(subject)
        return asyncio.sleep(self.delay) if self.delay else None


def read(nc: Client, js: JetStreamContext, subjects: list[str], start: int, end: int, sink, **options):
    history = JetStreamHistory(nc, js)
    return OrderedRead(
        nc, js, subjects, start, end, sink, lambda seq: history.count_from(subjects, seq), **options
    )


async def test_reads_the_matching_events_of_a_range_in_order_with_several_filters(nc, js, events_stream):
    subjects = [f"events.{t}.r{i % 3}" for i, t in enumerate(["node_status", "system_log"] * 150)]
    seqs = await store(js, subjects)
    wanted = ["events.node_status.r0", "events.system_log.r1"]
    start, end = seqs[20], seqs[250]
    sink = Collect()
    reading = read(nc, js, wanted, start, end, sink)
    assert await reading.run() == len(sink.seqs)
    expected = [
        seq for seq, subject in zip(seqs, subjects, strict=True) if subject in wanted and start <= seq <= end
    ]
    assert sink.seqs == expected
    assert set(sink.subjects) == set(wanted)
    assert reading.restarts == 0


async def test_events_after_the_end_of_the_range_are_not_read_even_while_arriving(nc, js, events_stream):
    seqs = await store(js, ["events.system_log.a"] * 500)
    more = asyncio.create_task(store(js, ["events.system_log.a"] * 500))
    sink = Collect()
    await read(nc, js, ["events.system_log.a"], seqs[0], seqs[-1], sink).run()
    await more
    assert sink.seqs == seqs


async def test_a_slow_sink_holds_the_read_and_still_gets_everything(nc, js, events_stream):
    # Several megabytes through a sink that takes its time: the server is held by flow control.
    seqs = await store(js, ["events.system_log.a"] * 1500, size=4096)
    sink = Collect(delay=0.002)
    reading = read(nc, js, ["events.system_log.a"], seqs[0], seqs[-1], sink)
    await reading.run()
    assert sink.seqs == seqs
    assert reading.restarts == 0


async def test_dropped_deliveries_are_a_gap_and_the_consumer_is_created_anew(nc, js, events_stream):
    # A subscription that holds at most 50 messages drops the rest of what one socket read brings:
    # deliveries go missing in the middle of bursts (seen in the next delivery's number) and at
    # the end (seen in the idle heartbeat's last delivery). Each time the read starts over from
    # the event after the last one it handed over.
    seqs = await store(js, ["events.system_log.a"] * 1000)
    sink = Collect()
    reading = read(
        nc, js, ["events.system_log.a"], seqs[0], seqs[-1], sink, pending_msgs_limit=50, heartbeat=0.1
    )
    await asyncio.wait_for(reading.run(), 60)
    assert sink.seqs == seqs
    assert reading.restarts > 0


async def test_a_consumer_lost_on_the_server_is_created_anew(nc, js, events_stream):
    # More than flow control lets the server send ahead (a few megabytes), so that some of it is
    # still on the server when the consumer goes.
    seqs = await store(js, ["events.system_log.a"] * 600, size=16384)
    sink_seqs: list[int] = []
    deleted = asyncio.Event()

    def sink(burst: Burst):
        sink_seqs.extend(int(seq) for seq, _, _ in burst)
        if not deleted.is_set():
            return delete_consumer_then_go_on()
        return None

    async def delete_consumer_then_go_on() -> None:
        # While the sink holds the read, the server loses the consumer (as a restart would).
        for consumer in await js.consumers_info(EVENTS_STREAM):
            await js.delete_consumer(EVENTS_STREAM, consumer.name)
        deleted.set()

    reading = read(nc, js, ["events.system_log.a"], seqs[0], seqs[-1], sink, heartbeat=0.1, stall_check=0.3)
    await asyncio.wait_for(reading.run(), 30)
    assert sink_seqs == seqs
    assert reading.restarts >= 1


async def test_a_sink_that_has_enough_ends_the_read(nc, js, events_stream):
    seqs = await store(js, ["events.system_log.a"] * 1000)
    bursts: list[Burst] = []

    def sink(burst: Burst) -> None:
        bursts.append(burst)
        raise StopReading

    await read(nc, js, ["events.system_log.a"], seqs[0], seqs[-1], sink).run()
    assert len(bursts) == 1
    assert [int(seq) for seq, _, _ in bursts[0]] == seqs[: len(bursts[0])]


async def test_a_failing_sink_fails_the_read_and_leaves_no_consumer(nc, js, events_stream):
    seqs = await store(js, ["events.system_log.a"] * 10)

    async def gone() -> None:
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await read(nc, js, ["events.system_log.a"], seqs[0], seqs[-1], lambda _: gone()).run()
    await asyncio.sleep(0.1)  # the delete request is fire and forget
    assert await js.consumers_info(EVENTS_STREAM) == []
