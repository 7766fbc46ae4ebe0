"""`snapshot=latest`: the latest event of every matching (type, resource), then live, without a gap."""

import asyncio
import random

import nats
import pytest

from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import store_event
from eh_devtools.sse_client import next_event, read_sse

pytestmark = pytest.mark.nats


def event(event_type: str, resource_id: str, n: int = 0) -> dict:
    return SEED_EXAMPLES[event_type] | {"resource_id": resource_id, "id": f"{event_type}-{resource_id}-{n}"}


async def store_many(js, events: list[dict]) -> list[int]:
    return [await store_event(js, e) for e in events]


async def read_until(messages, stop: str, timeout: float = 10.0) -> tuple[list, list]:
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


def latest_per_subject(stored: list[int], events: list[dict], wanted) -> list[int]:
    latest: dict[tuple[str, str], int] = {}
    for seq, e in zip(stored, events, strict=True):
        if wanted(e):
            latest[(e["event"], e["resource_id"])] = seq
    return sorted(latest.values())


async def test_the_latest_event_of_every_type_and_resource_then_caught_up_then_live(edge, js):
    rng = random.Random(5)
    types = ["node_status", "node_metrics", "system_log"]
    events = [event(rng.choice(types), f"node-{rng.randrange(6)}", i) for i in range(300)]
    stored = await store_many(js, events)
    async with edge.stream("GET", "/api/v1/events", params={"snapshot": "latest"}) as response:
        messages = read_sse(response)
        snapshot, controls = await read_until(messages, "stream.caught_up")
        assert [c.event for c in controls] == ["stream.ready", "stream.caught_up"]
        assert controls[0].json()["snapshot"] is True
        assert controls[1].json()["last_seq"] == stored[-1]
        assert [int(m.id) for m in snapshot] == latest_per_subject(stored, events, lambda e: True)
        live = await store_event(js, event("node_status", "node-1", 999))
        assert int((await asyncio.wait_for(next_event(messages), 5)).id) == live


async def test_a_snapshot_honours_the_type_and_resource_filters(edge, js):
    rng = random.Random(6)
    events = [
        event(rng.choice(["node_metrics", "container_metrics", "system_log"]), f"r-{rng.randrange(8)}", i)
        for i in range(400)
    ]
    stored = await store_many(js, events)
    params = {"snapshot": "latest", "type": "node_metrics,container_metrics", "resource_id": "r-1,r-2,r-7"}
    async with edge.stream("GET", "/api/v1/events", params=params) as response:
        snapshot, _ = await read_until(read_sse(response), "stream.caught_up")
    wanted = latest_per_subject(
        stored,
        events,
        lambda e: e["event"] != "system_log" and e["resource_id"] in ("r-1", "r-2", "r-7"),
    )
    assert [int(m.id) for m in snapshot] == wanted
    assert len(wanted) == 6


async def test_a_snapshot_of_nothing_goes_live_at_once(edge, js):
    await store_event(js, event("system_log", "log-1"))
    params = {"snapshot": "latest", "type": "pipeline_status"}
    async with edge.stream("GET", "/api/v1/events", params=params) as response:
        snapshot, controls = await read_until(read_sse(response), "stream.caught_up")
    assert snapshot == []
    assert controls[-1].json()["last_seq"] == 1


async def test_resume_ignores_the_snapshot(edge, js):
    stored = await store_many(js, [event("node_metrics", "node-1", i) for i in range(5)])
    headers = {"Last-Event-ID": str(stored[1])}
    async with edge.stream(
        "GET", "/api/v1/events", params={"snapshot": "latest"}, headers=headers
    ) as response:
        history, controls = await read_until(read_sse(response), "stream.caught_up")
    assert [int(m.id) for m in history] == stored[2:]
    assert controls[0].json()["snapshot"] is False


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"snapshot": "first"}, "not a snapshot mode"),
        ({"snapshot": "latest", "limit": 5}, "snapshot=latest takes no"),
        ({"snapshot": "latest", "start_time": "2024-03-20T10:00:00Z"}, "snapshot=latest takes no"),
    ],
)
async def test_bad_snapshot_parameters_are_refused_naming_snapshot(edge, events_stream, params, fragment):
    # On the history endpoint, limit is the page size: a snapshot is paged with it.
    paths = ["/api/v1/events"] + ([] if "limit" in params else ["/api/v1/events/history"])
    for path in paths:
        response = await edge.get(path, params=params)
        assert response.status_code == 422
        (detail,) = response.json()["detail"]
        assert detail["field"] == "snapshot"
        assert fragment in detail["msg"]


async def test_the_history_endpoint_pages_one_snapshot_whatever_arrives_meanwhile(edge, js):
    events = [event("node_metrics", f"node-{i % 7}", i) for i in range(70)]
    stored = await store_many(js, events)
    params = {"snapshot": "latest", "limit": 3}
    first = (await edge.get("/api/v1/events/history", params=params)).json()
    assert first["last_seq"] == stored[-1]
    pages = [first]
    await store_many(js, [event("node_metrics", "node-0", 1000), event("node_metrics", "node-9", 1001)])
    while pages[-1]["next"]:
        page = await edge.get("/api/v1/events/history", params=params | {"cursor": pages[-1]["next"]})
        assert page.status_code == 200
        pages.append(page.json())
    seqs = [e["seq"] for page in pages for e in page["events"]]
    assert seqs == latest_per_subject(stored, events, lambda e: True)
    assert [len(page["events"]) for page in pages] == [3, 3, 1]
    assert {page["last_seq"] for page in pages} == {stored[-1]}
    assert pages[0]["events"][0]["resource_id"] == "node-0"
    desc = await edge.get("/api/v1/events/history", params=params | {"order": "desc"})
    assert desc.status_code == 422


@pytest.mark.slow
async def test_snapshot_hand_over_has_no_gap_and_no_duplicate_under_continuous_publishing(nats_url, edge, js):
    """Twelve clients open snapshots while events keep arriving on 40 subjects. Each must end up
    with the newest event of every subject, see each live event once and in order, and hold in
    its snapshot only the latest event (at the caught-up point) of subjects not updated since."""
    subjects = [(t, f"node-{i}") for t in ("node_metrics", "node_status") for i in range(20)]
    await store_many(js, [event(t, r, 0) for t, r in subjects])
    stop = asyncio.Event()
    stored: list[tuple[int, str, str]] = []

    async def publish_continuously() -> None:
        publisher = await nats.connect(nats_url)
        pjs = publisher.jetstream()
        rng = random.Random(11)
        n = 0
        while not stop.is_set():
            t, r = rng.choice(subjects)
            n += 1
            stored.append((await store_event(pjs, event(t, r, n)), t, r))
        await publisher.close()

    received: dict[int, list[tuple[str, int, str]]] = {k: [] for k in range(12)}

    def params_of(k: int) -> dict:
        return {"snapshot": "latest"} | ({"type": "node_metrics"} if k % 3 == 0 else {})

    async def client(k: int) -> None:
        async with edge.stream("GET", "/api/v1/events", params=params_of(k)) as response:
            async for message in read_sse(response):
                if message.event == "stream.caught_up":
                    received[k].append(("caught_up", message.json()["last_seq"], ""))
                elif message.id is not None:
                    received[k].append(("event", int(message.id), message.json()["resource_id"]))

    publisher = asyncio.create_task(publish_continuously())
    clients = []
    for k in range(12):
        clients.append(asyncio.create_task(client(k)))
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    stop.set()
    await publisher
    subject_of = {seq: (t, r) for seq, t, r in stored}
    for seq in range(1, len(subjects) + 1):
        message = await js.get_msg("EVENTS", seq)
        _, t, r = message.subject.split(".")
        subject_of[seq] = (t, r)
    last_seq = max(subject_of)

    def last_matching(k: int) -> int:
        return max(seq for seq, (t, _) in subject_of.items() if k % 3 or t == "node_metrics")

    async with asyncio.timeout(20):
        while any(not received[k] or max(s for _, s, _ in received[k]) < last_matching(k) for k in range(12)):
            await asyncio.sleep(0.05)
    for task in clients:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)

    for k in range(12):
        wants = (lambda t: t == "node_metrics") if k % 3 == 0 else (lambda t: True)
        matching = sorted(seq for seq, (t, _) in subject_of.items() if wants(t))
        marker = next(i for i, item in enumerate(received[k]) if item[0] == "caught_up")
        caught_up_at = received[k][marker][1]
        snapshot = [seq for _, seq, _ in received[k][:marker]]
        live = [seq for _, seq, _ in received[k][marker + 1 :]]
        assert live == [s for s in matching if s > caught_up_at], f"client {k}: live gap or duplicate"
        assert snapshot == sorted(snapshot)
        snapshot_subjects = [subject_of[s] for s in snapshot]
        assert len(set(snapshot_subjects)) == len(snapshot_subjects), f"client {k}: a subject twice"
        for seq in snapshot:
            later = [s for s in matching if subject_of[s] == subject_of[seq] and seq < s <= caught_up_at]
            assert not later, f"client {k}: snapshot event {seq} is not its subject's latest"
        # Every subject is known to the client: from the snapshot, or live right after it.
        newest = {subject_of[s]: s for s in snapshot + live}
        assert newest == {subject_of[s]: s for s in matching}
        assert last_seq >= caught_up_at
