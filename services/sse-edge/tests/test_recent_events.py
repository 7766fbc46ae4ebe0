"""Resumes served from the edge's window of recent events: the same as from JetStream, without it."""

import asyncio
import gc
import random

import pytest
from fastapi import FastAPI

from eh_contracts.examples import SEED_EXAMPLES
from eh_contracts.subjects import SubjectFilter
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from sse_edge.app import create_app
from sse_edge.live.filter_group import FramedEvent
from sse_edge.live.recent_events import RecentEvents
from sse_edge.metrics import RESUMES

TYPES = ["node_status", "node_metrics", "system_log", "system_alert"]


def frame(seq: int) -> FramedEvent:
    return FramedEvent(seq, b"f%d" % seq, None, 0.0)


def seqs(recent: RecentEvents, after: int, subject_filter: SubjectFilter) -> list[int]:
    return list(recent.select(after, subject_filter).seqs)


def test_the_window_indexes_by_type_and_resource_and_forgets_the_oldest_tenth():
    recent = RecentEvents(10_000)
    for seq in range(1, 21):
        recent.append(TYPES[seq % 4], f"r{seq % 3}", frame(seq), b"x" * 100)
    recent.skipped(21)  # not an event: covered all the same
    assert (recent.low, recent.last_seq, len(recent)) == (1, 21, 20)
    everything = seqs(recent, 10, SubjectFilter())
    assert everything == list(range(11, 21))
    by_resource = seqs(recent, 3, SubjectFilter.of([], ["r1", "r2"]))
    assert by_resource == [s for s in range(4, 21) if s % 3 in (1, 2)]
    pair = seqs(recent, 0, SubjectFilter.of(["node_metrics"], ["r1"]))
    assert pair == [s for s in range(1, 21) if s % 4 == 1 and s % 3 == 1]
    assert recent.covers(0)
    assert recent.covers(21)
    assert not recent.covers(22)
    for seq in range(22, 80):
        recent.append("node_status", "r9", frame(seq), b"x" * 100)
    assert recent.size_bytes <= 10_000
    assert recent.low > 1
    assert not recent.covers(recent.low - 2)
    assert recent.covers(recent.low - 1)
    assert seqs(recent, 0, SubjectFilter())[0] == recent.low
    assert seqs(recent, 0, SubjectFilter.of([], ["r9"]))[-1] == 79
    off = RecentEvents(0)
    off.append("node_status", "r", frame(1), b"")
    assert not off.covers(0)


def test_after_evictions_the_indexes_still_select_exactly_and_frames_follow_their_sequences():
    recent = RecentEvents(40_000)
    kept = {}
    for seq in range(1, 2_001):
        event_type, resource_id = TYPES[seq % 4], f"r{seq % 7}"
        recent.append(event_type, resource_id, frame(seq), b"%d" % seq)
        kept[seq] = (event_type, resource_id)
    assert recent.low > 1_000  # evicted many times over
    assert recent.size_bytes <= 40_000
    for types, resources in ([], []), (["node_status"], []), ([], ["r3", "r5"]), (["system_log"], ["r2"]):
        subject_filter = SubjectFilter.of(types, resources)
        for after in (0, recent.low - 1, recent.low + 33, 1_999, 2_000):
            selected = recent.select(after, subject_filter)
            expected = [
                s for s in range(max(after + 1, recent.low), 2_001) if subject_filter.matches(*kept[s])
            ]
            assert list(selected.seqs) == expected, (types, resources, after)
            assert selected.frames == [b"f%d" % s for s in expected]
    even_payloads = recent.select(0, SubjectFilter(), lambda payload: int(payload) % 2 == 0)
    assert list(even_payloads.seqs) == [s for s in range(recent.low, 2_001) if s % 2 == 0]


def test_joined_frames_are_shared_between_resumes_and_follow_new_events_and_evictions():
    """What a resume from memory writes: the selected frames joined, the same bytes for the next
    resume with the same id and filters, grown by what arrived since, and never stale after an
    eviction or beyond `max_bytes`."""
    rng = random.Random(15)
    recent = RecentEvents(30_000)
    kept: dict[int, tuple[str, str]] = {}
    filters = [SubjectFilter(), SubjectFilter.of([], ["r1"]), SubjectFilter.of(["node_status"], ["r2", "r3"])]
    seq = 0
    for _ in range(300):
        for _ in range(rng.randrange(5)):
            seq += 1
            kept[seq] = (rng.choice(TYPES), f"r{rng.randrange(5)}")
            recent.append(*kept[seq], frame(seq), b"x" * 100)
        if not seq:
            continue
        subject_filter = rng.choice(filters)
        after = rng.randrange(max(0, recent.low - 1), seq + 1)
        expected = b"".join(
            b"f%d" % s for s in range(max(after + 1, recent.low), seq + 1) if subject_filter.matches(*kept[s])
        )
        assert recent.joined(after, subject_filter, 1 << 20) == expected, (after, subject_filter)
        again = recent.joined(after, subject_filter, 1 << 20)
        assert again is recent.joined(after, subject_filter, 1 << 20)  # shared, not joined anew
        assert recent.joined(after, subject_filter, len(expected) - 1 if expected else -1) is None
    assert recent.low > 1  # evictions happened along the way


def test_the_window_holds_no_object_per_event_for_the_garbage_collector():
    """Tracked objects per event made every young collection walk the window (a 10-20 ms pause,
    the delivery latency's p99, at 10,000 events/s): the window is kept in columns."""
    recent = RecentEvents(2**30)
    gc.collect()
    tracked_before = len(gc.get_objects())
    for seq in range(1, 10_001):
        recent.append(TYPES[seq % 4], f"r{seq % 50}", frame(seq), b"x" * 100)
    assert len(recent) == 10_000
    assert len(gc.get_objects()) - tracked_before < 100


def event(rng: random.Random, n: int) -> dict:
    event_type = rng.choice(TYPES)
    return SEED_EXAMPLES[event_type] | {"resource_id": f"res-{rng.randrange(4)}", "id": f"e-{n}"}


async def resume(client, params: dict, after: int) -> list[tuple[str, str | None, str]]:
    """Everything up to stream.caught_up, as (event, id, data), stream.ready aside."""
    got = []
    headers = {"Last-Event-ID": str(after)}
    async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        messages = read_sse(response)
        async with asyncio.timeout(10):
            while True:
                message = await next_event(messages)
                if message.event == "stream.ready":
                    continue
                got.append((message.event, message.id, message.data))
                if message.event == "stream.caught_up":
                    return got


@pytest.mark.nats
async def test_a_resume_from_memory_is_the_same_as_a_resume_from_jetstream(
    nats_url, events_stream, js, edge_settings
):
    settings_for = edge_settings
    with_window: FastAPI = create_app(settings_for(nats_url))
    without: FastAPI = create_app(settings_for(nats_url, recent_events_bytes=0))
    async with serving(with_window) as memory_edge, serving(without) as jetstream_edge:
        recent: RecentEvents = with_window.state.recent_events
        rng = random.Random(7)
        stored = [await store_event(js, event(rng, n)) for n in range(200)]
        async with asyncio.timeout(10):
            while recent.last_seq < stored[-1]:
                await asyncio.sleep(0.02)
        assert recent.covers(stored[0])
        before = RESUMES.labels("memory")._value.get()
        queries = [
            {},
            {"type": "node_metrics,system_log"},
            {"resource_id": "res-1"},
            {"type": "node_status", "resource_id": "res-2,res-3"},
            {"filter": 'resource_id in ["res-0", "res-3"] && event != "system_log"'},
            {"end_time": "2100-01-01T00:00:00Z", "type": "system_alert"},
        ]
        for params in queries:
            for after in (stored[0], stored[57], stored[-2], stored[-1]):
                from_memory = await resume(memory_edge, params, after)
                from_jetstream = await resume(jetstream_edge, params, after)
                assert from_memory == from_jetstream, (params, after)
                assert from_memory[-1][0] == "stream.caught_up"
        assert RESUMES.labels("memory")._value.get() - before == len(queries) * 4


@pytest.mark.nats
async def test_a_resume_older_than_the_window_comes_from_jetstream_exactly(
    nats_url, events_stream, js, edge_settings
):
    settings_for = edge_settings
    app: FastAPI = create_app(settings_for(nats_url, recent_events_bytes=20_000))
    async with serving(app) as edge:
        recent: RecentEvents = app.state.recent_events
        rng = random.Random(8)
        stored = [await store_event(js, event(rng, n)) for n in range(150)]
        async with asyncio.timeout(10):
            while recent.last_seq < stored[-1]:
                await asyncio.sleep(0.02)
        assert not recent.covers(stored[0])
        before = RESUMES.labels("jetstream")._value.get()
        got = await resume(edge, {}, stored[0])
        assert [int(seq) for _, seq, _ in got[:-1]] == stored[1:]
        assert RESUMES.labels("jetstream")._value.get() == before + 1
