"""SIGHUP reloads the rules file: pending state survives, a bad file changes nothing."""

import asyncio
import os
import signal

import pytest
from evaluator_helpers import (
    node_metrics,
    settings_for,
    stored,
    summary,
    wait_for,
    wait_for_events,
    write_rules,
)
from rules_helpers import CONTAINER_RULE, CPU_RULE, OFFLINE_RULE, iso

from alert_evaluator.app import create_app
from eh_devtools.pytest_plugin import serving, store_event

pytestmark = pytest.mark.nats


async def rules_checksum(client) -> str:
    return (await client.get("/api/v1/rules")).json()["checksum"]


async def reload(client, before: str) -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    for _ in range(200):
        if await rules_checksum(client) != before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the rules were not reloaded")


async def test_reload_keeps_pending_state_and_resolves_alerts_of_removed_rules(
    nats_url, js, events_stream, tmp_path
):
    path = write_rules(tmp_path / "rules.yaml", CPU_RULE, OFFLINE_RULE)
    async with serving(create_app(settings_for(nats_url, path))) as client:
        offline = {
            "event": "node_status",
            "resource_id": "node-9",
            "timestamp": iso(0),
            "data": {"new_state": "offline"},
        }
        seq = await store_event(js, offline)
        for minute in (0, 1):
            seq = await store_event(js, node_metrics("node-1", minute, 90))
        await wait_for(client, committed=seq)

        write_rules(path, CPU_RULE.replace("for: 5m", "for: 3m"), CONTAINER_RULE)
        await reload(client, await rules_checksum(client))
        seq = await store_event(js, node_metrics("node-1", 2, 90))
        await wait_for(client, committed=seq)
        assert summary(await stored(js)) == [
            ("node_offline:node-9", "firing", iso(0)),
            ("node_offline:node-9", "resolved", iso(0)),
        ]
        seq = await store_event(js, node_metrics("node-1", 3, 90))
        await wait_for(client, committed=seq)
        assert summary(await stored(js))[2:] == [("high_cpu:node-1", "firing", iso(3))]  # pending since 0

        logs = await wait_for_events(js, "events.system_log.>", 2)
        assert logs[1]["data"]["message"].startswith("rules reloaded from")
        assert {k: logs[1]["data"]["context"][k] for k in ("added", "removed", "changed")} == {
            "added": ["container_failed"],
            "removed": ["node_offline"],
            "changed": ["high_cpu"],
        }

        checksum = await rules_checksum(client)
        path.write_text("rules:\n  - name: broken\n    event: node_metrics\n", encoding="utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        logs = await wait_for_events(js, "events.system_log.>", 3)
        rejected = logs[2]["data"]
        assert rejected["level"] == "error"
        assert rejected["message"].startswith("rules reload rejected: 5 problem(s)")
        assert "line 2, rule 'broken', field 'condition': required" in rejected["context"]["problems"]
        assert await rules_checksum(client) == checksum
        seq = await store_event(js, node_metrics("node-1", 4, 10))
        status = await wait_for(client, committed=seq)
        assert status["role"] == "active"
        assert summary(await stored(js))[3:] == [("high_cpu:node-1", "resolved", iso(3))]


async def test_clients_see_the_rules_file_name_not_its_path(nats_url, events_stream, tmp_path):
    path = write_rules(tmp_path / "farm-rules.yaml", CPU_RULE)
    async with serving(create_app(settings_for(nats_url, path))) as client:
        rules = await client.get("/api/v1/rules")
        status = await client.get("/api/v1/status")
    assert rules.json()["source"] == "farm-rules.yaml"
    assert status.json()["rules"]["source"] == "farm-rules.yaml"
    assert str(tmp_path) not in rules.text
    assert str(tmp_path) not in status.text
