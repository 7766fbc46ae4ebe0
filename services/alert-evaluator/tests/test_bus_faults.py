"""What disappears or dies under the evaluator: the stream, its bucket, the process mid-step."""

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
from evaluator_helpers import (
    free_port,
    settings_for,
    start_replica,
    status_event,
    stored,
    summary,
    wait_for,
    wait_for_events,
    write_rules,
)
from prometheus_client import REGISTRY
from rules_helpers import OFFLINE_RULE, iso

from alert_evaluator.app import create_app
from alert_evaluator.evaluation_step import AFTER_PUBLISH
from alert_evaluator.state_store import BUCKET
from eh_devtools.pytest_plugin import serving, store_event
from eh_runtime.settings import StreamSettings
from eh_runtime.stream import EVENTS_STREAM, ensure_events_stream

pytestmark = pytest.mark.nats


def replaced() -> float:
    return REGISTRY.get_sample_value("eventhandler_alert_stream_replaced_total") or 0.0


def already_published() -> float:
    return REGISTRY.get_sample_value("eventhandler_alert_transitions_already_published_total") or 0.0


def offline(node: str, minute: float, state: str = "offline") -> dict:
    return status_event("node_status", node, minute, new_state=state)


async def replace_stream(js) -> None:
    await js.delete_stream(EVENTS_STREAM)
    await ensure_events_stream(js, StreamSettings())


async def wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("start_from", ["all", "new"])
async def test_a_stream_deleted_and_created_again_is_evaluated_from_its_start(
    nats_url, js, events_stream, tmp_path, start_from
):
    rules = write_rules(tmp_path / "rules.yaml", OFFLINE_RULE)
    async with serving(create_app(settings_for(nats_url, rules, start_from=start_from))) as client:
        await wait_for(client, role="active")
        replaced_before = replaced()
        seq = 0
        for minute in range(5):
            seq = await store_event(js, offline(f"old-{minute}", minute, "online"))
        await wait_for(client, committed=seq)

        await js.delete_stream(EVENTS_STREAM)

        async def not_ready() -> bool:
            return (await client.get("/readyz")).status_code == 503

        await wait_until(not_ready)
        await ensure_events_stream(js, StreamSettings())
        new_seq = await store_event(js, offline("node-1", 6))
        assert new_seq < seq  # the new stream counts from 1 again
        alerts = await wait_for_events(js, "events.system_alert.>", 1)
        assert summary(alerts) == [("node_offline:node-1", "firing", iso(6))]
        assert (await wait_for(client, role="active"))["committed"] < seq
        assert (await client.get("/readyz")).status_code == 200
        assert replaced() == replaced_before + 1


async def test_a_stream_replaced_while_no_evaluator_ran_is_evaluated_from_its_start(
    nats_url, js, events_stream, tmp_path
):
    rules = write_rules(tmp_path / "rules.yaml", OFFLINE_RULE)
    settings = settings_for(nats_url, rules)
    async with serving(create_app(settings)) as client:
        seq = 0
        for minute in range(5):
            seq = await store_event(js, offline(f"old-{minute}", minute, "online"))
        await wait_for(client, committed=seq)
    await replace_stream(js)
    await store_event(js, offline("node-1", 6))
    async with serving(create_app(settings)):
        alerts = await wait_for_events(js, "events.system_alert.>", 1)
        assert summary(alerts) == [("node_offline:node-1", "firing", iso(6))]


async def test_the_state_bucket_deleted_is_provisioned_again(nats_url, js, events_stream, tmp_path):
    rules = write_rules(tmp_path / "rules.yaml", OFFLINE_RULE)
    async with serving(create_app(settings_for(nats_url, rules))) as client:
        seq = await store_event(js, offline("node-1", 0))
        await wait_for(client, committed=seq)
        await js.delete_key_value(BUCKET)
        seq = await store_event(js, offline("node-2", 1))
        await wait_for(client, role="active", committed=seq, timeout=20)
        await js.key_value(BUCKET)  # it exists again
        # evaluated again from the start with no stored state: node-1's alert is not published twice
        assert summary(await stored(js)) == [
            ("node_offline:node-1", "firing", iso(0)),
            ("node_offline:node-2", "firing", iso(1)),
        ]


@pytest.mark.slow
async def test_a_crash_between_publishing_and_committing_never_publishes_an_alert_twice(
    nats_url, js, tmp_path
):
    # A one-second duplicate window: the restart comes after it, so JetStream alone would store
    # the republished alert again.
    await ensure_events_stream(js, StreamSettings(duplicate_window=timedelta(seconds=1)))
    rules = write_rules(tmp_path / "rules.yaml", OFFLINE_RULE)
    port = free_port()
    process = start_replica("crashing", nats_url, rules, port, tmp_path, EH_FAULT_POINT=AFTER_PUBLISH)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_for(client, role="active", timeout=20)
            await store_event(js, offline("node-1", 0))
            assert await asyncio.to_thread(process.wait, 15) == 137  # died right after publishing
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert summary(await stored(js)) == [("node_offline:node-1", "firing", iso(0))]
    await asyncio.sleep(1.5)  # past the duplicate window (and the dead replica's 1 s lease)

    published_before = already_published()
    async with serving(create_app(settings_for(nats_url, rules, replica_id="restarted"))) as client:
        seq = await store_event(js, offline("node-1", 1, "online"))
        current = await wait_for(client, committed=seq)
        assert current["role"] == "active"
    assert summary(await stored(js)) == [
        ("node_offline:node-1", "firing", iso(0)),
        ("node_offline:node-1", "resolved", iso(0)),
    ]
    assert already_published() == published_before + 1


async def test_an_unreadable_checkpoint_restarts_from_the_start_instead_of_failing_forever(
    nats_url, js, events_stream, tmp_path
):
    rules = write_rules(tmp_path / "rules.yaml", OFFLINE_RULE)
    settings = settings_for(nats_url, rules)
    async with serving(create_app(settings)) as client:
        seq = await store_event(js, offline("node-1", 0))
        await wait_for(client, committed=seq)
    kv = await js.key_value(BUCKET)
    await kv.put("checkpoint", b"not json at all")
    async with serving(create_app(settings)) as client:
        seq = await store_event(js, offline("node-2", 1))
        await wait_for(client, role="active", committed=seq)
    assert summary(await stored(js)) == [
        ("node_offline:node-1", "firing", iso(0)),  # not published again
        ("node_offline:node-2", "firing", iso(1)),
    ]
