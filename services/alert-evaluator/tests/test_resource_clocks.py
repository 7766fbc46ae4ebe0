"""Late and skewed producers: each resource is judged in its own time, silence in stream time.

`observe(..., at, data, stored)`: `at` is the event's timestamp (the producer's clock), `stored`
the time JetStream stored it. Every case runs against a node that reports on time alongside.
"""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from evaluator_helpers import settings_for, stored, wait_for, write_rules
from rules_helpers import CPU_RULE, at, rules

from alert_evaluator.app import create_app
from alert_evaluator.engine import AlertEngine
from eh_devtools.pytest_plugin import serving, store_event

STALENESS_S = 120  # the rules' default here: staleness 2m


def hot(usage: float = 95) -> dict:
    return {"cpu": {"usage": usage}}


def transitions(out: list) -> list[tuple[str, str, float]]:
    return [(t.resource_id, t.state, t.reason) for t in out]


def test_a_producer_whose_clock_runs_three_minutes_behind_alerts_like_any_other_node():
    engine = AlertEngine(rules(CPU_RULE))  # for: 5m
    out = []
    for second in range(0, 8 * 60, 30):
        stored = at(0) + second
        out += engine.observe("node_metrics", "on-time", stored, hot(), stored)
        out += engine.observe("node_metrics", "behind", stored - 180, hot(), stored)
        out += engine.advance(stored + 1)
    assert transitions(out) == [("on-time", "firing", "condition_met"), ("behind", "firing", "condition_met")]
    fired = {t.resource_id: t for t in out}
    # each fired 5 minutes after its condition first held, in its own clock
    assert fired["on-time"].started_at == at(5)
    assert fired["behind"].started_at == at(5) - 180


def test_a_short_for_does_not_flap_for_a_producer_behind():
    engine = AlertEngine(rules(CPU_RULE.replace("for: 5m", "for: 10s")))
    out = []
    for second in range(0, 120, 5):
        stored = at(0) + second
        out += engine.observe("node_metrics", "on-time", stored, hot(10), stored)
        out += engine.observe("node_metrics", "behind", stored - 180, hot(), stored)
        out += engine.advance(stored + 1)
    assert transitions(out) == [("behind", "firing", "condition_met")]


def test_late_samples_showing_the_condition_for_longer_than_for_fire_once():
    engine = AlertEngine(rules(CPU_RULE))
    out = []
    # 30 minutes of the on-time node; the other one is offline and buffers its samples
    for second in range(0, 30 * 60, 30):
        stored = at(0) + second
        out += engine.observe("node_metrics", "on-time", stored, hot(10), stored)
        out += engine.advance(stored)
    # then it uploads 10 minutes of buffered samples (minute 0 to 10) at once, in several fetches
    upload = at(30)
    for n, second in enumerate(range(0, 10 * 60, 30)):
        out += engine.observe("node_metrics", "late", at(0) + second, hot(), upload + n * 0.01)
        if n % 4 == 3:
            out += engine.advance(engine.stream_time)  # a batch boundary
    out += engine.advance(engine.stream_time)
    assert transitions(out) == [("late", "firing", "condition_met")]
    assert out[0].started_at == at(5)
    # still holding at its last sample: it fires until the node stays silent for the staleness
    out += engine.observe("node_metrics", "on-time", at(31), hot(10), at(31))
    out += engine.advance(engine.stream_time)
    assert transitions(out) == [("late", "firing", "condition_met")]
    out += engine.observe("node_metrics", "on-time", at(32.2), hot(10), at(32.2))
    out += engine.advance(engine.stream_time)
    assert transitions(out)[1:] == [("late", "resolved", "no_data")]


def test_a_resource_going_silent_lapses_after_the_staleness_while_others_report():
    engine = AlertEngine(rules(CPU_RULE))
    engine.observe("node_metrics", "silent", at(0), hot(), at(0))
    engine.observe("node_metrics", "silent", at(1), hot(), at(1))
    assert engine.counts()["pending"] == 1
    for second in range(60, 60 + STALENESS_S + 30, 10):
        stored = at(0) + second
        assert engine.observe("node_metrics", "on-time", stored, hot(10), stored) == []
        assert engine.advance(stored) == []
        remaining = engine.counts()["pending"]
        assert remaining == (1 if second <= 60 + STALENESS_S else 0), second
    assert engine.clock("silent") is None  # nothing under way: its clock is forgotten too


def test_a_producer_behind_goes_stale_in_stream_time_not_in_its_own():
    engine = AlertEngine(rules(CPU_RULE))
    engine.observe("node_metrics", "behind", at(0) - 600, hot(), at(0))  # ten minutes behind
    assert engine.advance(at(0) + STALENESS_S - 1) == []
    assert engine.counts()["pending"] == 1
    engine.advance(at(0) + STALENESS_S + 1)
    assert engine.counts()["pending"] == 0


def test_replays_are_deterministic_whatever_the_batching():
    def run(boundary: int) -> list:
        engine = AlertEngine(rules(CPU_RULE))
        out = []
        for n, second in enumerate(range(0, 15 * 60, 20)):
            stored = at(0) + second
            usage = 95 if (second // 60) % 9 < 7 else 20
            out += engine.observe("node_metrics", "a", stored - 200, hot(usage), stored)
            out += engine.observe("node_metrics", "b", stored + 30, hot(100 - usage), stored)
            if n % boundary == 0:
                out += engine.advance(engine.stream_time)
        out += engine.advance(engine.stream_time)
        return [(t.resource_id, t.state, t.at, t.started_at, t.reason) for t in out]

    first = run(1)
    assert first  # the timeline does fire and resolve
    assert run(7) == first
    assert run(1000) == first


@pytest.mark.nats
async def test_a_node_three_minutes_behind_alerts_through_the_evaluator_like_one_on_time(
    nats_url, js, events_stream, tmp_path
):
    rules_file = write_rules(tmp_path / "rules.yaml", CPU_RULE.replace("for: 5m", "for: 2s"))
    async with serving(create_app(settings_for(nats_url, rules_file))) as client:
        await wait_for(client, role="active")
        seq = 0
        for n in range(8):  # a sample every half second, for four seconds
            now = datetime.now(UTC)
            for node, lag in (("on-time", 0), ("behind", 180)):
                stamped = (now - timedelta(seconds=lag)).isoformat()
                event = {"id": f"{node}-{n}", "event": "node_metrics", "timestamp": stamped,
                         "resource_id": node, "data": {"cpu": {"usage": 95.0}}}  # fmt: skip
                seq = await store_event(js, event)
            await asyncio.sleep(0.5)
        await wait_for(client, committed=seq)
    fired = sorted((a["resource_id"], a["data"]["state"]) for a in await stored(js))
    assert fired == [("high_cpu:behind", "firing"), ("high_cpu:on-time", "firing")]
