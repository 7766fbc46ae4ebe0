"""History, replay and exact resume on GET /api/v1/events (real nats-server, real uvicorn)."""

import asyncio
import random
from datetime import UTC, datetime, timedelta, timezone

import nats
import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.sse_client import next_event, read_sse
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import ensure_events_stream
from sse_edge.app import create_app

pytestmark = pytest.mark.nats

# Event times a little before their store times, and out of store order, as real producers'
# clocks and buffers make them: within the edge's skew allowance (SSE_EDGE_TIME_SKEW, 30 s).
# T0 is set afresh for each test, 25 s before it starts.
T0 = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _event_times_just_before_now():
    global T0  # the `at()` helper reads it
    T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=25)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def event(event_type: str, resource_id: str, second: float = 0) -> dict:
    return SEED_EXAMPLES[event_type] | {"resource_id": resource_id, "timestamp": at(second)}


async def store_many(js, events: list[dict]) -> list[int]:
    """Store events as the collector does, pipelined; their sequences in order."""
    return [await store_event(js, e) for e in events]


async def read_until(messages, stop: str, timeout: float = 10.0) -> tuple[list, list]:
    """(events, control events) of an open stream, up to and including the control event `stop`."""
    events, controls = [], []
    async with asyncio.timeout(timeout):
        while True:
            message = await next_event(messages)
            if message.event.startswith("stream."):
                controls.append(message)
                if message.event == stop:
                    return events, controls
            else:
                events.append(message)


def seqs(messages) -> list[int]:
    return [int(m.id) for m in messages]


async def test_limit_replays_the_last_n_matching_oldest_first_then_goes_live(edge, js):
    stored = await store_many(js, [event("node_metrics", f"node-{i % 3}", i / 10) for i in range(60)])
    wanted = [s for i, s in enumerate(stored) if i % 3 == 1][-7:]
    async with edge.stream("GET", "/api/v1/events", params={"resource_id": "node-1", "limit": 7}) as response:
        messages = read_sse(response)
        history, controls = await read_until(messages, "stream.caught_up")
        assert [c.event for c in controls] == ["stream.ready", "stream.caught_up"]
        assert controls[0].json()["last_seq"] == stored[-1]
        assert controls[0].json()["limit"] == 7
        assert seqs(history) == wanted
        live = await store_event(js, event("node_status", "node-1", 99))
        assert int((await asyncio.wait_for(next_event(messages), 5)).id) == live


async def test_limit_larger_than_the_history_replays_all_of_it(edge, js):
    stored = await store_many(js, [event("system_log", "log-1", i) for i in range(5)])
    async with edge.stream("GET", "/api/v1/events", params={"limit": 100}) as response:
        history, _ = await read_until(read_sse(response), "stream.caught_up")
    assert seqs(history) == stored


async def test_start_time_uses_the_events_own_timestamp(edge, js):
    # Stored in this order, but their own times are shuffled: store order must not matter.
    minutes = [5, 1, 9, 3, 7, 2, 8]  # seconds after T0
    stored = await store_many(js, [event("pipeline_status", "p-1", m) for m in minutes])
    async with edge.stream("GET", "/api/v1/events", params={"start_time": at(3)}) as response:
        history, _ = await read_until(read_sse(response), "stream.caught_up")
    assert seqs(history) == [s for s, m in zip(stored, minutes, strict=True) if m >= 3]
    assert [m.json()["timestamp"] for m in history] == [at(m) for m in minutes if m >= 3]


async def test_start_time_with_limit_keeps_the_most_recent_n_of_the_range(edge, js):
    minutes = [0, 10, 11, 1, 12, 13, 2, 14]
    stored = await store_many(js, [event("system_log", "log-1", m) for m in minutes])
    in_range = [s for s, m in zip(stored, minutes, strict=True) if m >= 10]
    async with edge.stream("GET", "/api/v1/events", params={"start_time": at(10), "limit": 3}) as response:
        history, _ = await read_until(read_sse(response), "stream.caught_up")
    assert seqs(history) == in_range[-3:]


async def test_a_past_end_time_is_a_bounded_query_that_ends_and_closes(edge, js):
    minutes = [1, 2, 3, 4, 5, 6]
    stored = await store_many(js, [event("node_status", "node-1", m) for m in minutes])
    params = {"start_time": at(2), "end_time": at(4)}
    async with edge.stream("GET", "/api/v1/events", params=params) as response:
        messages = read_sse(response)
        history, controls = await read_until(messages, "stream.end")
        assert [c.event for c in controls] == ["stream.ready", "stream.end"]
        assert controls[-1].json()["last_seq"] == stored[3]
        rest = [m async for m in messages]
    assert seqs(history) == stored[1:4]
    assert rest == []  # the server closed the stream after stream.end


async def test_a_future_end_time_streams_live_until_then(edge, js):
    end = datetime.now(UTC) + timedelta(seconds=1.5)
    params = {"end_time": end.isoformat(), "type": "system_log"}
    async with edge.stream("GET", "/api/v1/events", params=params) as response:
        messages = read_sse(response)
        assert (await next_event(messages)).event == "stream.ready"
        assert (await next_event(messages)).event == "stream.caught_up"
        past = await store_event(js, SEED_EXAMPLES["system_log"])  # the seed's 2024 timestamp
        after_end = SEED_EXAMPLES["system_log"] | {"timestamp": (end + timedelta(hours=1)).isoformat()}
        await store_event(js, after_end)  # outside the range: never delivered
        now = await store_event(
            js, SEED_EXAMPLES["system_log"] | {"timestamp": datetime.now(UTC).isoformat()}
        )
        received = [await asyncio.wait_for(next_event(messages), 5) for _ in range(2)]
        ended = await asyncio.wait_for(next_event(messages), 5)
        assert datetime.now(UTC) >= end
    assert seqs(received) == [past, now]
    assert ended.event == "stream.end"


async def test_resume_after_a_disconnect_gives_exactly_the_missed_matching_events(edge, js):
    params = {"type": "node_metrics,node_status", "resource_id": "node-1,node-2"}
    async with edge.stream("GET", "/api/v1/events", params=params) as response:
        messages = read_sse(response)
        await next_event(messages)
        await next_event(messages)
        first = await store_event(js, event("node_status", "node-1"))
        last_seen = await asyncio.wait_for(next_event(messages), 5)
        assert int(last_seen.id) == first
    rng = random.Random(3)
    missed = [
        event(
            rng.choice(["node_metrics", "node_status", "system_log"]),
            rng.choice(["node-1", "node-2", "node-3"]),
        )
        for _ in range(1000)
    ]
    stored = await store_many(js, missed)
    wanted = [
        s
        for s, e in zip(stored, missed, strict=True)
        if e["event"] in ("node_metrics", "node_status") and e["resource_id"] in ("node-1", "node-2")
    ]
    headers = {"Last-Event-ID": last_seen.id}
    # limit and start_time are ignored on resume
    params |= {"limit": 1, "start_time": at(3600)}
    async with edge.stream("GET", "/api/v1/events", params=params, headers=headers) as response:
        history, controls = await read_until(read_sse(response), "stream.caught_up")
    assert controls[0].json()["resume_after"] == first
    assert controls[0].json()["limit"] is None
    assert seqs(history) == wanted


async def test_resume_works_the_same_on_another_edge_instance(nats_url, edge, js, edge_settings):
    stored = await store_many(js, [event("system_log", f"log-{i}") for i in range(20)])
    async with serving(create_app(edge_settings(nats_url))) as other:
        async with other.stream("GET", "/api/v1/events", params={"last_event_id": stored[4]}) as response:
            history, _ = await read_until(read_sse(response), "stream.caught_up")
    assert seqs(history) == stored[5:]


async def test_the_header_wins_over_the_query_parameter(edge, js):
    stored = await store_many(js, [event("system_log", "log-1") for _ in range(5)])
    params = {"last_event_id": stored[0]}
    async with edge.stream(
        "GET", "/api/v1/events", params=params, headers={"Last-Event-ID": str(stored[2])}
    ) as response:
        history, _ = await read_until(read_sse(response), "stream.caught_up")
    assert seqs(history) == stored[3:]


async def test_expired_history_is_announced_with_stream_gap(nats_url, js, edge_settings):
    await ensure_events_stream(
        js, StreamSettings(max_age=timedelta(seconds=1), duplicate_window=timedelta(seconds=1))
    )
    old = await store_many(js, [event("system_log", "log-1") for _ in range(3)])
    await asyncio.sleep(2.5)  # retention removes them
    kept = await store_many(js, [event("system_log", "log-1") for _ in range(2)])
    async with serving(create_app(edge_settings(nats_url))) as client:
        headers = {"Last-Event-ID": str(old[0])}
        async with client.stream("GET", "/api/v1/events", headers=headers) as response:
            history, controls = await read_until(read_sse(response), "stream.caught_up")
    gap = next(c for c in controls if c.event == "stream.gap")
    assert gap.json()["first_missing"] == old[1]
    assert gap.json()["last_missing"] == kept[0] - 1
    assert [c.event for c in controls] == ["stream.ready", "stream.gap", "stream.caught_up"]
    assert seqs(history) == kept


async def test_filtered_replay_with_several_types_and_resources(edge, js):
    rng = random.Random(7)
    types = ["node_status", "node_metrics", "container_status", "system_log"]
    resources = [f"r-{i}" for i in range(6)]
    events = [event(rng.choice(types), rng.choice(resources), i / 20) for i in range(400)]
    stored = await store_many(js, events)
    params = [
        ("type", "node_status,container_status"),
        ("type", "system_log"),
        ("resource_id", "r-1,r-4"),
        ("resource_id", "r-5"),
    ]
    async with edge.stream("GET", "/api/v1/events", params=[*params, ("start_time", at(-1))]) as response:
        history, _ = await read_until(read_sse(response), "stream.caught_up")
    wanted = [
        s
        for s, e in zip(stored, events, strict=True)
        if e["event"] in ("node_status", "container_status", "system_log")
        and e["resource_id"] in ("r-1", "r-4", "r-5")
    ]
    assert seqs(history) == wanted
    assert {m.event for m in history} <= {"node_status", "container_status", "system_log"}


@pytest.mark.parametrize(
    ("params", "headers", "status", "fragment"),
    [
        ({"last_event_id": "abc"}, {}, 400, "not an event id"),
        ({}, {"Last-Event-ID": "-3"}, 400, "not an event id"),
        ({"last_event_id": "999999"}, {}, 400, "beyond the stream's last event"),
        ({"start_time": at(10), "end_time": at(5)}, {}, 422, "end_time"),
        ({"start_time": "yesterday"}, {}, 422, "start_time"),
        ({"end_time": "2026-01-01T10:00:00"}, {}, 422, "end_time"),
        ({"limit": 0}, {}, 422, "limit"),
        ({"limit": 10_001}, {}, 422, "limit"),
        ({"limit": "many"}, {}, 422, "limit"),
    ],
)
async def test_bad_history_parameters_are_refused_before_the_stream_opens(
    edge, js, params, headers, status, fragment
):
    await store_event(js, event("system_log", "log-1"))
    response = await edge.get("/api/v1/events", params=params, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    text = detail if isinstance(detail, str) else " ".join(f"{d['field']} {d['msg']}" for d in detail)
    assert fragment in text


async def test_an_unencoded_plus_in_the_offset_is_understood(edge, js):
    await store_event(js, event("system_log", "log-1", 30))
    local = (T0 + timedelta(seconds=20)).astimezone(timezone(timedelta(hours=8)))
    response_params = f"start_time={local.isoformat()}"  # unencoded: the + arrives as a space
    assert "+08:00" in response_params
    async with edge.stream("GET", f"/api/v1/events?{response_params}") as response:
        history, controls = await read_until(read_sse(response), "stream.caught_up")
    assert controls[0].json()["start_time"] == at(20)
    assert len(history) == 1


@pytest.mark.slow
async def test_hand_over_to_live_has_no_gap_and_no_duplicate_under_continuous_publishing(nats_url, edge, js):
    """Sixteen clients replay (by limit or by start time) and switch to live while events keep
    arriving; each must see every matching event from its first one on, once, in order."""
    await store_many(js, [event("node_metrics", f"node-{i % 4}", i / 100) for i in range(400)])
    stop = asyncio.Event()
    last_published = 0

    async def publish_continuously() -> None:
        nonlocal last_published
        publisher = await nats.connect(nats_url)
        pjs = publisher.jetstream()
        i = 0
        while not stop.is_set():
            last_published = await store_event(pjs, event("node_metrics", f"node-{i % 4}", 5 + i / 1000))
            i += 1
        await publisher.close()

    received: dict[int, list[int]] = {k: [] for k in range(16)}

    def params_of(k: int) -> dict:
        params: dict = {"resource_id": f"node-{k % 4}"}
        return params | ({"limit": 50} if k % 2 else {"start_time": at(k / 10)})

    async def client(k: int) -> None:
        async with edge.stream("GET", "/api/v1/events", params=params_of(k)) as response:
            async for message in read_sse(response):
                if message.id is not None:
                    received[k].append(int(message.id))

    publisher = asyncio.create_task(publish_continuously())
    await asyncio.sleep(0.3)
    clients = [asyncio.create_task(client(k)) for k in range(16)]
    await asyncio.sleep(2.0)
    stop.set()
    await publisher

    matching: dict[str, list[int]] = {}
    for seq in range(1, last_published + 1):
        message = await js.get_msg("EVENTS", seq)
        matching.setdefault(message.subject.rsplit(".", 1)[1], []).append(seq)
    # Wait until every client has its resource's last event, then stop them.
    async with asyncio.timeout(20):
        while any(not received[k] or received[k][-1] < matching[f"node-{k % 4}"][-1] for k in range(16)):
            await asyncio.sleep(0.05)
    for task in clients:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)

    for k in range(16):
        got = received[k]
        expected = [s for s in matching[f"node-{k % 4}"] if s >= got[0]]
        assert got == expected, f"client {params_of(k)}: gap, duplicate or disorder"
        assert len(got) > 50  # history and a good share of live events
