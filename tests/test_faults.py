"""The fault suite: real servers killed, paused and deleted under the three services.

Every test here runs against real nats-server processes (one, or a 3-node cluster on loopback) and
the real services; `make test-faults` runs only these (`-m faults`), `make test` runs them too.
"""

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_VERSION
from eh_devtools.nats_cluster import NatsCluster
from eh_devtools.nats_server import NatsServer
from eh_devtools.pytest_plugin import serving, store_event
from eh_devtools.service_process import ServiceProcess
from eh_devtools.sse_client import SseMessage, next_event, read_sse
from eh_runtime.settings import NatsSettings, StreamSettings
from eh_runtime.stream import EVENTS_STREAM
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

pytestmark = [pytest.mark.faults, pytest.mark.own_server, pytest.mark.slow]

ACCEPTED = {"stored", "duplicate", "unchanged"}


def nats_settings(url: str) -> NatsSettings:
    return NatsSettings(url=url, reconnect_wait=0.05, request_timeout=2)


def log_event(event_id: str) -> dict:
    return {
        "id": event_id,
        "event": "system_log",
        "resource_id": "fault-test",
        "data": {"level": "info", "component": "faults", "message": event_id},
    }


class Producer:
    """Posts events in batches through the collector and retries every event not accepted with the
    same id, as the API tells producers to (503, 207, a connection error), until all are accepted."""

    def __init__(self, collector: httpx.AsyncClient, prefix: str) -> None:
        self.collector = collector
        self.prefix = prefix
        self.acknowledged: set[str] = set()
        self.retries = 0

    async def send(self, start: int, count: int, batch: int = 10, pause: float = 0.01) -> None:
        for first in range(start, start + count, batch):
            pending = [
                log_event(f"{self.prefix}-{i}") for i in range(first, min(start + count, first + batch))
            ]
            # Generous: after a leader is killed, the election takes seconds, more on a loaded machine.
            deadline = time.monotonic() + 120
            while pending:
                assert time.monotonic() < deadline, f"not accepted within two minutes: {pending[0]['id']}"
                try:
                    response = await self.collector.post("/api/v1/events", json=pending, timeout=10)
                    results = response.json().get("events", []) if response.status_code in (202, 207) else []
                except (httpx.HTTPError, ValueError):
                    results = []
                accepted = {r["id"] for r in results if r.get("status") in ACCEPTED}
                self.acknowledged |= accepted
                if len(accepted) < len(pending):
                    self.retries += 1
                    await asyncio.sleep(0.1)
                pending = [e for e in pending if e["id"] not in accepted]
            await asyncio.sleep(pause)


async def stored_ids(url: str, subject: str = "events.system_log.>", timeout: float = 120) -> list[str]:
    """Every event id stored on `subject`, in stream order (duplicates kept).

    Reads until the consumer has delivered every message it found pending when it was created. A
    fetch that times out is not the end of the data: a new consumer on an R3 stream elects a leader
    of its own first, which takes seconds on a loaded machine, or just after the stream's leader
    was killed; taking that silence for the end read a partial list, and reported stored events
    as lost.
    """
    nc = await nats.connect(servers=url.split(","))
    js = nc.jetstream(timeout=10)
    try:
        sub = await js.pull_subscribe(
            subject,
            stream=EVENTS_STREAM,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=10),
        )
        expected = (await sub.consumer_info()).num_pending
        ids: list[str] = []
        deadline = time.monotonic() + timeout
        while len(ids) < expected:
            assert time.monotonic() < deadline, (
                f"read {len(ids)} of the {expected} events stored on {subject}"
            )
            try:
                batch = await sub.fetch(min(500, expected - len(ids)), timeout=5)
            except TimeoutError:
                continue
            ids += [json.loads(msg.data)["id"] for msg in batch]
        return ids
    finally:
        await nc.close()


async def stream_leader(url: str, timeout: float = 60) -> str:
    """The server that leads EVENTS, once there is one: during an election the stream has no
    leader, or the API answers "temporarily unavailable", for seconds on a loaded machine."""
    nc = await nats.connect(servers=url.split(","))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = await nc.jetstream(timeout=10).stream_info(EVENTS_STREAM)
            except (NatsTimeoutError, APIError):
                info = None
            if info is not None and info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
            assert time.monotonic() < deadline, f"EVENTS has no leader after {timeout} s"
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def live(
    edge: httpx.AsyncClient, params: dict | None = None
) -> AsyncIterator[AsyncIterator[SseMessage]]:
    async with edge.stream("GET", "/api/v1/events", params=params, timeout=30) as response:
        assert response.status_code == 200
        messages = read_sse(response)
        assert (await asyncio.wait_for(next_event(messages), 10)).event == "stream.ready"
        yield messages


async def read_until(messages: AsyncIterator[SseMessage], last_id: str, timeout: float = 120) -> list[str]:
    """Event ids received until `last_id` (control events skipped)."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while not ids or ids[-1] != last_id:
        message = await asyncio.wait_for(next_event(messages), max(0.1, deadline - time.monotonic()))
        if not message.event.startswith("stream."):
            ids.append(message.json()["id"])
    return ids


async def test_the_stream_leader_killed_during_ingest_loses_nothing_acknowledged(nats_cluster: NatsCluster):
    nats_url = nats_settings(nats_cluster.url)
    collector_settings = CollectorSettings(nats=nats_url, stream=StreamSettings(replicas=3))
    async with serving(create_collector(collector_settings), ready_timeout=30) as collector:
        async with serving(create_edge(EdgeSettings(nats=nats_url)), ready_timeout=30) as edge:
            async with live(edge, {"type": "system_log"}) as messages:
                producer = Producer(collector, "r3")
                await producer.send(0, 100)
                leader = await stream_leader(nats_cluster.url)
                nats_cluster.server(leader).kill()
                await producer.send(100, 200)
                received = await read_until(messages, "r3-299")
            assert await stream_leader(nats_cluster.url) != leader
    stored = await stored_ids(nats_cluster.url)
    assert producer.acknowledged == {f"r3-{i}" for i in range(300)}
    assert producer.acknowledged <= set(stored)  # 0 acknowledged lost
    assert len(stored) == len(set(stored))  # retries deduplicated
    assert received[-1] == "r3-299"  # the live stream went on after the leader died
    assert len(received) == len(set(received))


async def test_nats_killed_and_restarted_on_its_store_with_producers_retrying(nats_server: NatsServer):
    settings = nats_settings(nats_server.url)
    async with serving(create_collector(CollectorSettings(nats=settings))) as collector:
        producer = Producer(collector, "k9")
        await producer.send(0, 50)

        async def restart_soon() -> None:
            await asyncio.sleep(0.3)
            nats_server.kill()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(nats_server.start)

        restart = asyncio.create_task(restart_soon())
        await producer.send(50, 150, pause=0.02)
        await restart
        await producer.send(200, 10)
    stored = await stored_ids(nats_server.url)
    assert producer.retries > 0  # the producer did see the server gone
    assert producer.acknowledged == {f"k9-{i}" for i in range(210)} <= set(stored)
    assert len(stored) == len(set(stored))


GHOST = b'{"timestamp":"2026-01-01T00:00:00Z","data":{"new_state":"offline"}}'
HUGE_MEMORY = (
    b'{"id":"big","event":"node_metrics","resource_id":"big","timestamp":"2026-01-01T00:00:00Z",'
    b'"data":{"memory":{"used":' + b"9" * 401 + b',"total":1}}}'
)
POISON = [
    ("events.node_status.x", b"[" * 200_000, {"Nats-Msg-Id": "deep"}),
    ("events.node_status.x", b"not json at all", None),
    ("events.node_status.x", b"", None),
    ("events.node_status.x", b"\xff\xfe{", None),
    ("events.node_status", b"{}", None),
    ("events.node_status.ghost", GHOST, None),
    ("events.node_metrics.big", HUGE_MEMORY, {"Nats-Msg-Id": "big"}),
]
RULES = """rules:
  - name: node_offline
    event: node_status
    condition: new_state == "offline"
    level: critical
    category: availability
    title: Node offline
    message: Node {resource_id} is offline
"""


async def test_every_poison_message_on_the_bus_with_all_three_services_serving(nats_url: str, tmp_path: Path):
    settings = nats_settings(nats_url)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    evaluator_settings = EvaluatorSettings(nats=settings, rules_file=rules, start_from="all", lease_ttl=1)
    async with serving(create_collector(CollectorSettings(nats=settings))) as collector:
        async with serving(create_edge(EdgeSettings(nats=settings))) as edge:
            async with serving(create_evaluator(evaluator_settings)) as evaluator:
                async with live(edge) as messages:
                    nc = await nats.connect(nats_url)
                    js = nc.jetstream()
                    for subject, payload, headers in POISON:
                        await js.publish(subject, payload, headers=headers)
                    await nc.close()
                    now = datetime.now(UTC).isoformat()
                    response = await collector.post(
                        "/api/v1/events",
                        json={
                            "id": "real-1",
                            "event": "node_status",
                            "resource_id": "node-1",
                            "timestamp": now,
                            "data": {"new_state": "offline"},
                        },
                    )
                    assert response.status_code == 202
                    first = await asyncio.wait_for(next_event(messages), 10)
                    while first.event.startswith("stream.") or first.json()["event"] != "node_status":
                        first = await asyncio.wait_for(next_event(messages), 10)
                    assert first.json()["id"] == "real-1"  # the first event a dashboard sees
                alerts = []
                deadline = time.monotonic() + 15
                while not alerts and time.monotonic() < deadline:
                    alerts = await stored_ids(nats_url, "events.system_alert.>")
                    await asyncio.sleep(0.1)
                status = (await evaluator.get("/api/v1/status")).json()
                assert status["role"] == "active"
                assert len(status["dead_letters"]) == len(POISON) - 1  # the two-token one is not its to read
                for client in (collector, edge, evaluator):
                    assert (await client.get("/readyz")).status_code == 200
    assert len(alerts) == 1  # node-1 only, not the ghost


async def store_many(js, events: list[dict]) -> list[int]:
    """Store events as the collector does (id, mark), many acks awaited at once."""
    futures = []
    for event in events:
        headers = {"Nats-Msg-Id": event["id"], ENVELOPE_HEADER: ENVELOPE_VERSION}
        subject = f"events.{event['event']}.{event['resource_id']}"
        payload = json.dumps(event | {"timestamp": datetime.now(UTC).isoformat()}).encode()
        futures.append(await js.publish_async(subject, payload, headers=headers))
    return [ack.seq for ack in await asyncio.gather(*futures)]


def edge_process(nats_url: str, tmp_path: Path, name: str, **settings: str) -> ServiceProcess:
    env = {"NATS_URL": nats_url, "NATS_RECONNECT_WAIT": "0.1s", **settings}
    return ServiceProcess("sse_edge", "SSE_EDGE_", env, tmp_path / f"{name}.log").start()


async def read_ids(
    base_url: str, last_event_id: int, count: int, *, kill_after: ServiceProcess | None = None
) -> list[int]:
    """Up to `count` event sequences from an edge, resuming after `last_event_id`; with `kill_after`,
    that edge is killed (SIGKILL) once `count` events arrived and the stream's end is awaited."""
    seqs: list[int] = []
    if count <= 0:
        return seqs
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        headers = {"Last-Event-ID": str(last_event_id)}
        try:
            async with client.stream("GET", "/api/v1/events", headers=headers) as response:
                assert response.status_code == 200
                async for message in read_sse(response):
                    if message.id is not None:
                        seqs.append(int(message.id))
                        if len(seqs) == count:
                            if kill_after is None:
                                return seqs
                            kill_after.kill()
        except httpx.HTTPError:
            pass  # the edge died under the client: what a browser's EventSource sees
    return seqs


async def test_an_edge_killed_during_replay_and_live_loses_nothing_on_resume(
    nats_url: str, js, events_stream, tmp_path: Path
):
    stored = await store_many(js, [log_event(f"e-{i}") for i in range(20_000)])
    # The first edge starts with an empty window of recent events, so its replay reads JetStream
    # (a replay from memory leaves in one write, which a kill does not interrupt); the second
    # edge fills its window at start and serves the resume from memory.
    first = edge_process(nats_url, tmp_path, "a", SSE_EDGE_RECENT_EVENTS_PREFILL="0s")
    second = edge_process(nats_url, tmp_path, "b")
    try:
        await first.ready()
        await second.ready()
        # replay: the first edge dies after 100 of 20,000 stored events (the client still reads what
        # reached its socket); the client resumes on the other edge
        seen = await read_ids(first.base_url, 0, 100, kill_after=first)
        assert seen == stored[: len(seen)]
        assert len(seen) < len(stored)  # it did die during the replay
        resumed = await read_ids(second.base_url, seen[-1], len(stored) - len(seen))
        assert seen + resumed == stored  # no gap, no duplicate
        # live: events arrive while the client is on the second edge; it dies; resume on a new first
        first.start()
        await first.ready()

        async def produce() -> list[int]:
            return [await store_event(js, log_event(f"live-{i}")) for i in range(50)]

        producing = asyncio.create_task(produce())
        live_seen = await read_ids(second.base_url, stored[-1], 20, kill_after=second)
        live_stored = await producing
        rest = await read_ids(first.base_url, live_seen[-1], 50 - len(live_seen))
        assert live_seen + rest == live_stored
    finally:
        first.stop()
        second.stop()


def evaluator_process(nats_url: str, rules: Path, tmp_path: Path, name: str) -> ServiceProcess:
    env = {
        "NATS_URL": nats_url,
        "NATS_RECONNECT_WAIT": "0.1s",
        "ALERT_EVALUATOR_RULES_FILE": str(rules),
        "ALERT_EVALUATOR_REPLICA_ID": name,
        "ALERT_EVALUATOR_LEASE_TTL": "1s",
        "ALERT_EVALUATOR_START_FROM": "all",
    }
    return ServiceProcess("alert_evaluator", "ALERT_EVALUATOR_", env, tmp_path / f"{name}.log").start()


async def role_of(replica: ServiceProcess) -> str:
    async with httpx.AsyncClient(base_url=replica.base_url, timeout=5) as client:
        try:
            return str((await client.get("/api/v1/status")).json()["role"])
        except httpx.HTTPError:
            return "unreachable"


async def until_role(replica: ServiceProcess, role: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while await role_of(replica) != role:
        assert time.monotonic() < deadline, f"{replica.env['ALERT_EVALUATOR_REPLICA_ID']} never {role}"
        await asyncio.sleep(0.1)


def node_state(node: str, state: str) -> dict:
    return {
        "event": "node_status",
        "resource_id": node,
        "data": {"new_state": state},
        "id": f"{node}-{state}",
    }


@pytest.mark.parametrize("fault", ["killed", "paused"])
async def test_the_active_evaluator_killed_or_paused_hands_over_without_duplicates(
    nats_url: str, js, events_stream, tmp_path: Path, fault: str
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    replicas = {name: evaluator_process(nats_url, rules, tmp_path, name) for name in ("a", "b")}
    try:
        for replica in replicas.values():
            await replica.ready()
        deadline = time.monotonic() + 20
        roles = {}
        while sorted(roles.values()) != ["active", "standby"]:
            assert time.monotonic() < deadline, roles
            roles = {name: await role_of(replica) for name, replica in replicas.items()}
            await asyncio.sleep(0.1)
        active = next(name for name, role in roles.items() if role == "active")
        standby = next(name for name in replicas if name != active)
        await store_event(js, node_state("node-1", "offline"))
        await asyncio.sleep(0.5)
        if fault == "killed":
            replicas[active].kill()
        else:
            replicas[active].signal(signal.SIGSTOP)
        await store_event(js, node_state("node-1", "online"))
        await store_event(js, node_state("node-2", "offline"))
        await until_role(replicas[standby], "active")
        if fault == "paused":
            await asyncio.sleep(1.5)
            replicas[active].signal(signal.SIGCONT)  # it wakes up believing nothing happened
            await until_role(replicas[active], "standby")
        alerts: list[tuple[str, str]] = []
        deadline = time.monotonic() + 15
        while len(alerts) < 3 and time.monotonic() < deadline:
            alerts = [(a["resource_id"], a["data"]["state"]) for a in await stored_events(nats_url)]
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # room for a duplicate to show up
        alerts = [(a["resource_id"], a["data"]["state"]) for a in await stored_events(nats_url)]
        assert alerts == [
            ("node_offline:node-1", "firing"),
            ("node_offline:node-1", "resolved"),
            ("node_offline:node-2", "firing"),
        ]
    finally:
        for replica in replicas.values():
            replica.stop()


async def stored_events(url: str, subject: str = "events.system_alert.>") -> list[dict]:
    nc = await nats.connect(servers=url.split(","))
    js = nc.jetstream(timeout=10)
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=10)
    sub = await js.pull_subscribe(subject, stream=EVENTS_STREAM, config=config)
    events: list[dict] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.5)
            except TimeoutError:
                return events
            events += [json.loads(msg.data) for msg in batch]
    finally:
        await nc.close()


async def test_readiness_answers_from_state_while_nats_stalls(nats_server: NatsServer):
    """A stalled server (SIGSTOP: sockets open, no answers), as during a cluster election: /readyz
    answers within a probe's default 1 s timeout, and turns 503 once JetStream stayed silent."""
    settings = NatsSettings(url=nats_server.url, reconnect_wait=0.05, request_timeout=1)
    async with serving(create_collector(CollectorSettings(nats=settings))) as collector:
        nats_server.pause()
        try:
            deadline = time.monotonic() + 20
            while True:
                started = time.monotonic()
                response = await collector.get("/readyz", timeout=5)
                assert time.monotonic() - started < 1.0
                if response.status_code == 503:
                    break
                assert time.monotonic() < deadline, "still ready long after JetStream went silent"
                await asyncio.sleep(0.2)
            checks = response.json()["checks"]
            assert "no answer from JetStream" in checks["stream"] or "not connected" in checks["nats"]
        finally:
            nats_server.resume()
