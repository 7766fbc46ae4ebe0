"""The evaluator against a real NATS server: firing, resolving, state rules, restarts, endpoints."""

import pytest
from evaluator_helpers import (
    node_metrics,
    settings_for,
    status_event,
    stored,
    summary,
    wait_for,
    wait_for_events,
    write_rules,
)
from rules_helpers import CONTAINER_RULE, CPU_RULE, DEFAULT_RULE_NAMES, OFFLINE_RULE, at, iso

from alert_evaluator.app import create_app
from eh_contracts.examples import SEED_EXAMPLES
from eh_devtools.pytest_plugin import serving, store_event

pytestmark = pytest.mark.nats


@pytest.fixture
def cpu_rules(tmp_path):
    return write_rules(tmp_path / "rules.yaml", CPU_RULE, OFFLINE_RULE, CONTAINER_RULE)


async def store_all(js, events) -> int:
    seq = 0
    for event in events:
        seq = await store_event(js, event)
    return seq


async def test_fires_after_the_duration_not_before_then_resolves_once(nats_url, js, events_stream, cpu_rules):
    async with serving(create_app(settings_for(nats_url, cpu_rules))) as client:
        seq = await store_all(js, [node_metrics("node-001", m, 85) for m in range(5)])
        await wait_for(client, committed=seq)
        assert await stored(js) == []
        assert (await client.get("/api/v1/alerts")).json()["alerts"][0]["phase"] == "pending"

        seq = await store_event(js, node_metrics("node-001", 5, 85))
        await wait_for(client, committed=seq)
        (firing,) = await stored(js)
        assert firing == {
            "id": f"high_cpu:node-001:firing:{round(at(5) * 1000)}",
            "event": "system_alert",
            "timestamp": iso(5),
            "resource_id": "high_cpu:node-001",
            # the seed design's own example, field for field, plus the alert's life-cycle fields
            "data": SEED_EXAMPLES["system_alert"]["data"]
            | {"state": "firing", "rule": "high_cpu", "started_at": iso(5)},
        }

        seq = await store_all(js, [node_metrics("node-001", m, 99) for m in (6, 7, 8)])
        await wait_for(client, committed=seq)
        assert len(await stored(js)) == 1  # no second firing while it fires

        seq = await store_event(js, node_metrics("node-001", 9, 40))
        await wait_for(client, committed=seq)
        alerts = await stored(js)
        assert summary(alerts) == [
            ("high_cpu:node-001", "firing", iso(5)),
            ("high_cpu:node-001", "resolved", iso(5)),
        ]
        resolved = alerts[1]
        assert resolved["timestamp"] == iso(9)
        assert resolved["data"]["details"]["current_value"] == 40.0
        assert resolved["data"]["details"]["reason"] == "condition_cleared"
        assert resolved["data"]["actions"] == []
        assert (await client.get("/api/v1/alerts")).json()["alerts"] == []


async def test_state_rules_fire_at_once_and_resolve_on_the_next_state(nats_url, js, events_stream, cpu_rules):
    async with serving(create_app(settings_for(nats_url, cpu_rules))) as client:
        seq = await store_all(
            js,
            [
                status_event("node_status", "node-7", 0, new_state="offline", reason="heartbeat_timeout"),
                status_event("container_status", "c-ok", 0, new_state="stopped", exit_code=0),
                status_event("container_status", "c-bad", 0, new_state="stopped", exit_code=137),
                status_event("node_status", "node-7", 3, new_state="online"),
            ],
        )
        await wait_for(client, committed=seq)
        assert summary(await stored(js)) == [
            ("node_offline:node-7", "firing", iso(0)),
            ("container_failed:c-bad", "firing", iso(0)),
            ("node_offline:node-7", "resolved", iso(0)),
        ]
        container = (await stored(js, "events.system_alert.container_failed:c-bad"))[0]
        assert container["data"]["message"] == "Container c-bad exited with 137"


async def test_the_default_rules_include_the_seed_example_and_the_state_rules(
    nats_url, js, events_stream, tmp_path
):
    settings = settings_for(nats_url, tmp_path / "unused.yaml")
    settings = settings.model_copy(update={"rules_file": type(settings)().rules_file})
    async with serving(create_app(settings)) as client:
        rules = (await client.get("/api/v1/rules")).json()["rules"]
        by_name = {rule["name"]: rule for rule in rules}
        assert by_name["high_cpu"] | {"fields": None} == by_name["high_cpu"] | {
            "event": "node_metrics",
            "condition": "cpu.usage > 80",
            "for": "PT5M",
            "staleness": "PT2M",  # from the file's defaults
            "resolve_delay": "PT0S",
            "level": "warning",
            "category": "resource",
            "title": "High CPU Usage",
            "fields": None,
        }
        assert by_name.keys() >= DEFAULT_RULE_NAMES
        assert by_name["node_offline"]["staleness"] == "never"  # a status never goes stale
        assert by_name["pipeline_failed"]["staleness"] == "P1D"  # unless the rule says so (24h)
        seq = await store_event(js, status_event("pipeline_status", "pipe-1", 0, new_status="failed"))
        await wait_for(client, committed=seq)
        assert summary(await stored(js)) == [("pipeline_failed:pipe-1", "firing", iso(0))]


async def test_a_restart_in_the_middle_of_pending_keeps_when_it_started(
    nats_url, js, events_stream, cpu_rules
):
    settings = settings_for(nats_url, cpu_rules)
    async with serving(create_app(settings)) as client:
        seq = await store_all(js, [node_metrics("node-001", m, 90) for m in range(4)])
        await wait_for(client, committed=seq)
    seq = await store_event(js, node_metrics("node-001", 4, 90))  # while no evaluator runs
    async with serving(create_app(settings)) as client:
        await wait_for(client, committed=seq)
        assert await stored(js) == []
        seq = await store_event(js, node_metrics("node-001", 5, 90))
        await wait_for(client, committed=seq)
    assert summary(await stored(js)) == [("high_cpu:node-001", "firing", iso(5))]


async def test_a_restart_while_firing_neither_fires_again_nor_forgets(nats_url, js, events_stream, cpu_rules):
    settings = settings_for(nats_url, cpu_rules)
    async with serving(create_app(settings)) as client:
        seq = await store_all(js, [node_metrics("node-001", m, 90) for m in range(7)])
        await wait_for(client, committed=seq)
    assert len(await stored(js)) == 1
    async with serving(create_app(settings)) as client:
        seq = await store_all(js, [node_metrics("node-001", m, 95) for m in (7, 8)])
        await wait_for(client, committed=seq)
        assert len(await stored(js)) == 1
        assert [a["phase"] for a in (await client.get("/api/v1/alerts")).json()["alerts"]] == ["firing"]
        seq = await store_event(js, node_metrics("node-001", 9, 10))
        await wait_for(client, committed=seq)
    assert summary(await stored(js)) == [
        ("high_cpu:node-001", "firing", iso(5)),
        ("high_cpu:node-001", "resolved", iso(5)),
    ]


async def test_events_that_are_not_envelopes_are_skipped_not_fatal(nats_url, js, events_stream, cpu_rules):
    async with serving(create_app(settings_for(nats_url, cpu_rules))) as client:
        await js.publish("events.node_metrics.node-001", b"not json", stream="EVENTS")
        await js.publish("events.node_metrics.node-001", b'{"data": 1}', stream="EVENTS")
        seq = await store_event(js, status_event("node_status", "node-1", 0, new_state="offline"))
        await wait_for(client, committed=seq)
        assert summary(await stored(js)) == [("node_offline:node-1", "firing", iso(0))]


async def test_own_alerts_are_not_evaluated_and_a_log_says_what_was_loaded(
    nats_url, js, events_stream, cpu_rules
):
    async with serving(create_app(settings_for(nats_url, cpu_rules))) as client:
        (loaded,) = await wait_for_events(js, "events.system_log.>", 1)
        assert loaded["data"]["component"] == "alert-evaluator"
        assert loaded["data"]["message"].startswith("rules loaded from")
        assert loaded["data"]["context"]["rules"] == ["container_failed", "high_cpu", "node_offline"]
        seq = await store_event(js, status_event("node_status", "node-1", 0, new_state="offline"))
        await wait_for(client, committed=seq)
        assert len(await stored(js)) == 1
        consumer = await js.consumer_info("EVENTS", "alert-evaluator")
        stream = await js.stream_info("EVENTS")
        # three messages stored (log, status, alert); the alert was never delivered to the evaluator
        assert (stream.state.messages, consumer.delivered.consumer_seq, consumer.num_pending) == (3, 2, 0)
