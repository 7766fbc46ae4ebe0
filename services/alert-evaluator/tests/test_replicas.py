"""Several replicas: one evaluates, the others stand by and take over; no alert is published twice."""

import asyncio
import contextlib
import signal
import time

import httpx
import pytest
from evaluator_helpers import (
    free_port,
    node_metrics,
    settings_for,
    start_replica,
    status,
    status_event,
    stored,
    summary,
    wait_for,
    write_rules,
)
from rules_helpers import CPU_RULE, OFFLINE_RULE, iso

from alert_evaluator.app import create_app
from alert_evaluator.state_store import AlertStateStore, CheckpointTaken, StreamIdentity
from eh_devtools.pytest_plugin import serving, store_event
from eh_runtime.connection import NatsConnection
from eh_runtime.settings import NatsSettings

pytestmark = pytest.mark.nats


def node_state(node: str, minute: float, state: str) -> dict:
    return status_event("node_status", node, minute, new_state=state)


async def test_a_standby_takes_over_when_the_active_replica_stops(nats_url, js, events_stream, tmp_path):
    rules = write_rules(tmp_path / "rules.yaml", CPU_RULE, OFFLINE_RULE)
    replicas = {}
    stacks = {}
    try:
        # "a" holds the lease before "b" starts: which replica wins a simultaneous start is a race.
        for name, role in (("a", "active"), ("b", "standby")):
            stacks[name] = contextlib.AsyncExitStack()
            replicas[name] = await stacks[name].enter_async_context(
                serving(create_app(settings_for(nats_url, rules, replica_id=name)))
            )
            await wait_for(replicas[name], role=role)
        # pending CPU on node-2 and a firing alert on node-1 when the active replica goes away
        seq = 0
        for event in [node_state("node-1", 0, "offline"), *(node_metrics("node-2", m, 95) for m in range(3))]:
            seq = await store_event(js, event)
        await wait_for(replicas["a"], committed=seq)
        assert (await status(replicas["b"]))["lease_holder"]["replica"] == "a"

        started = time.monotonic()
        await stacks.pop("a").aclose()
        await wait_for(replicas["b"], role="active", timeout=5)
        assert time.monotonic() - started < 3  # a graceful stop hands over at once, not after the TTL

        for event in [
            node_state("node-1", 4, "online"),
            *(node_metrics("node-2", m, 95) for m in range(3, 6)),
        ]:
            seq = await store_event(js, event)
        await wait_for(replicas["b"], committed=seq)
        assert summary(await stored(js)) == [
            ("node_offline:node-1", "firing", iso(0)),
            ("node_offline:node-1", "resolved", iso(0)),
            ("high_cpu:node-2", "firing", iso(5)),  # pending since minute 0, across the hand-over
        ]
    finally:
        for stack in stacks.values():
            await stack.aclose()


async def test_an_old_holder_cannot_commit_after_another_replica_claimed(nats_url, events_stream):
    async def store_for() -> tuple[NatsConnection, AlertStateStore]:
        connection = NatsConnection(NatsSettings(url=nats_url), "test")
        connection.start()
        await connection.wait_ready(5)
        store = AlertStateStore(connection, replicas=1)
        await store.open()
        return connection, store

    (conn_a, old), (conn_b, new) = await store_for(), await store_for()
    try:
        stream = StreamIdentity(events_stream.created.isoformat(), 0)
        old_checkpoint = await old.claim((await old.load()).checkpoint, "a", stream)
        await new.claim((await new.load()).checkpoint, "b", stream)
        with pytest.raises(CheckpointTaken):
            await old.commit(old_checkpoint, [], 10, 0.0, "a")
        assert (await new.load()).checkpoint.seq == 0
    finally:
        await conn_a.close()
        await conn_b.close()


@pytest.mark.slow
async def test_two_replicas_one_killed_the_other_continues_without_duplicates(
    nats_url, js, events_stream, tmp_path
):
    rules = write_rules(tmp_path / "rules.yaml", CPU_RULE, OFFLINE_RULE)
    ports = {"a": free_port(), "b": free_port()}
    processes = {name: start_replica(name, nats_url, rules, port, tmp_path) for name, port in ports.items()}
    clients = {name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") for name, port in ports.items()}
    try:
        roles = {}
        for name, client in clients.items():
            roles[name] = (await wait_for(client, timeout=20))["role"]
        deadline = time.monotonic() + 15
        while sorted(roles.values()) != ["active", "standby"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            roles = {name: (await status(client))["role"] for name, client in clients.items()}
        assert sorted(roles.values()) == ["active", "standby"], roles
        active = next(name for name, role in roles.items() if role == "active")
        standby = next(name for name in roles if name != active)

        seq = 0
        for event in [node_state("node-1", 0, "offline"), *(node_metrics("node-2", m, 95) for m in range(3))]:
            seq = await store_event(js, event)
        await wait_for(clients[active], committed=seq)

        processes[active].send_signal(signal.SIGKILL)  # no lease release, no goodbye
        processes[active].wait(10)
        for event in [
            node_state("node-1", 4, "online"),
            *(node_metrics("node-2", m, 95) for m in range(3, 6)),
        ]:
            seq = await store_event(js, event)
        started = time.monotonic()
        await wait_for(clients[standby], role="active", committed=seq, timeout=10)
        assert time.monotonic() - started < 5  # within the lease TTL (1s) and a poll, plus start-up
        assert summary(await stored(js)) == [
            ("node_offline:node-1", "firing", iso(0)),
            ("node_offline:node-1", "resolved", iso(0)),
            ("high_cpu:node-2", "firing", iso(5)),
        ]
    finally:
        for client in clients.values():
            await client.aclose()
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
                process.wait(10)
