"""The alert life cycle, in event time, without NATS."""

import dataclasses

import pytest
from rules_helpers import CONTAINER_RULE, CPU_RULE, OFFLINE_RULE, at, rules

from alert_evaluator.alert_state import AlertEntry, Phase
from alert_evaluator.engine import AlertEngine, ResourceClock
from alert_evaluator.rules import RuleSet


def cpu(usage: float) -> dict:
    return {"cpu": {"usage": usage}}


def feed(engine: AlertEngine, samples: list[tuple[float, float]], node: str = "node-001") -> list:
    out = []
    for minute, usage in samples:
        out += engine.observe("node_metrics", node, at(minute), cpu(usage))
    return out


def test_fires_only_once_the_condition_held_for_the_duration():
    engine = AlertEngine(rules(CPU_RULE))
    assert feed(engine, [(0, 85), (1, 90), (2, 95), (3, 85), (4, 86), (4.9, 99)]) == []
    assert engine.counts() == {"pending": 1, "firing": 0}
    (fired,) = feed(engine, [(5, 85)])
    assert (fired.state, fired.at, fired.started_at, fired.value) == ("firing", at(5), at(5), 85)


def test_a_sample_below_the_threshold_resets_pending():
    engine = AlertEngine(rules(CPU_RULE))
    assert feed(engine, [(0, 85), (1, 85), (2, 50), (3, 85), (4, 85), (5, 85), (6, 85), (7, 85)]) == []
    (fired,) = feed(engine, [(8, 85)])
    assert fired.started_at == at(8)  # 5 minutes after it held again at minute 3


def test_no_second_firing_while_firing_then_one_resolution():
    engine = AlertEngine(rules(CPU_RULE))
    (fired,) = feed(engine, [(0, 85), (1, 85), (2, 85), (3, 85), (4, 85), (5, 85)])
    assert fired.state == "firing"
    assert feed(engine, [(6, 99), (7, 85), (8, 95)]) == []
    (resolved,) = feed(engine, [(9, 40)])
    assert (resolved.state, resolved.at, resolved.value) == ("resolved", at(9), 40)
    assert resolved.started_at == fired.started_at == at(5)
    assert resolved.reason == "condition_cleared"
    assert len(engine) == 0
    assert feed(engine, [(10, 40)]) == []


def test_the_value_holds_between_samples_so_time_from_other_events_fires_it():
    engine = AlertEngine(rules(CPU_RULE))
    feed(engine, [(0, 85), (1.5, 85), (3, 85), (4.5, 85)])
    assert engine.advance(at(5)) == []  # strictly before 5m: not yet
    (fired,) = engine.advance(at(5.2))
    assert fired.started_at == at(5)


def test_missing_data_makes_pending_inactive_not_firing():
    engine = AlertEngine(rules(CPU_RULE))
    feed(engine, [(0, 85), (1, 85)])  # staleness 2m: the value counts until minute 3
    assert engine.advance(at(10)) == []
    assert len(engine) == 0
    # the next sample starts a new pending period
    assert feed(engine, [(11, 85), (13, 85), (15, 85)]) == []
    (fired,) = feed(engine, [(16, 85)])
    assert fired.started_at == at(16)


def test_a_late_sample_after_a_gap_does_not_fire_either():
    engine = AlertEngine(rules(CPU_RULE))
    assert feed(engine, [(0, 85), (6, 85)]) == []  # 6 minutes without data: pending restarted at 6
    assert engine.counts()["pending"] == 1


def test_a_firing_alert_whose_data_stops_resolves_for_lack_of_data():
    engine = AlertEngine(rules(CPU_RULE))
    feed(engine, [(m, 90) for m in range(6)])
    (resolved,) = engine.advance(at(9))
    assert (resolved.state, resolved.reason, resolved.at) == ("resolved", "no_data", at(7))


def test_resolve_delay_keeps_firing_through_a_short_dip():
    engine = AlertEngine(rules(CPU_RULE, defaults="staleness: 2m, resolve_delay: 2m"))
    feed(engine, [(m, 90) for m in range(6)])
    assert feed(engine, [(6, 50), (7, 90), (8, 50), (9, 50)]) == []
    (resolved,) = feed(engine, [(10, 50)])
    assert resolved.at == at(10)  # cleared at 8, resolved 2 minutes later


def test_samples_older_than_the_last_one_are_ignored():
    engine = AlertEngine(rules(CPU_RULE))
    feed(engine, [(0, 85), (2, 85)])
    assert feed(engine, [(1, 10)]) == []
    assert engine.late_samples == 1
    assert engine.counts()["pending"] == 1


def test_events_without_the_field_are_no_data():
    engine = AlertEngine(rules(CPU_RULE))
    feed(engine, [(0, 85)])
    assert engine.observe("node_metrics", "node-001", at(1), {"memory": {"used": 1, "total": 2}}) == []
    assert engine.counts()["pending"] == 1


def test_state_rules_fire_at_once_and_never_go_stale():
    engine = AlertEngine(rules(OFFLINE_RULE))
    (fired,) = engine.observe("node_status", "node-7", at(0), {"new_state": "offline"})
    assert fired.state == "firing"
    assert engine.advance(at(60 * 24 * 30)) == []
    (resolved,) = engine.observe("node_status", "node-7", at(60 * 24 * 31), {"new_state": "online"})
    assert resolved.reason == "condition_cleared"


def test_container_rule_needs_a_non_zero_exit_code():
    engine = AlertEngine(rules(CONTAINER_RULE))
    assert engine.observe("container_status", "c-1", at(0), {"new_state": "stopped", "exit_code": 0}) == []
    assert engine.observe("container_status", "c-1", at(0), {"new_state": "running"}) == []
    (fired,) = engine.observe("container_status", "c-2", at(0), {"new_state": "stopped", "exit_code": 137})
    assert fired.value == 137


def test_changes_report_each_changed_resource_with_its_alerts_once():
    engine = AlertEngine(rules(CPU_RULE))
    feed(engine, [(0, 85)])
    ((resource, (entry,), clock),) = engine.take_changes()
    assert (resource, entry.rule, entry.phase) == ("node-001", "high_cpu", Phase.PENDING)
    assert clock == ResourceClock(at(0), at(0))
    assert engine.take_changes() == []
    feed(engine, [(1, 10)])
    assert engine.take_changes() == [("node-001", [], None)]


def test_restored_state_continues_where_it_stopped():
    engine = AlertEngine(rules(CPU_RULE))
    feed(engine, [(0, 85), (1, 85)])
    records = [entry.to_record() for entry in engine]
    restored = AlertEngine(rules(CPU_RULE), [AlertEntry.from_record(r) for r in records], at(1))
    assert restored.start() == []
    assert feed(restored, [(2, 85), (4, 85)]) == []
    (fired,) = feed(restored, [(5, 85)])
    assert fired.started_at == at(5)


def test_reload_keeps_pending_state_and_resolves_alerts_of_removed_rules():
    engine = AlertEngine(rules(CPU_RULE, OFFLINE_RULE))
    feed(engine, [(0, 85), (1, 85)])
    engine.observe("node_status", "node-9", at(1), {"new_state": "offline"})
    out = engine.replace_rules(rules(CPU_RULE.replace("for: 5m", "for: 3m")))
    assert [(t.rule_name, t.state, t.reason) for t in out] == [("node_offline", "resolved", "rule_removed")]
    (fired,) = feed(engine, [(2, 85), (3, 85)])
    assert fired.started_at == at(3)  # the pending period from minute 0 was kept


def test_restored_firing_alert_of_an_unknown_rule_is_resolved_without_templates():
    engine = AlertEngine(rules(OFFLINE_RULE))
    engine.observe("node_status", "node-9", at(0), {"new_state": "offline"})
    records = [entry.to_record() for entry in engine]
    restored = AlertEngine(rules(CPU_RULE), [AlertEntry.from_record(r) for r in records], at(0))
    (resolved,) = restored.start()
    assert (resolved.rule_name, resolved.rule, resolved.reason) == ("node_offline", None, "rule_removed")


def test_an_event_whose_data_makes_a_condition_raise_changes_nothing():
    memory_rule = CPU_RULE.replace("high_cpu", "high_memory").replace(
        "cpu.usage > 80", "memory.used / memory.total * 100 > 90"
    )
    loaded = rules(CPU_RULE, memory_rule)
    # Compiled conditions do not raise on data (the 401-digit integer overflows the
    # division: no data); a condition that raises all the same must leave nothing half-applied.
    huge = 10**400
    assert loaded.by_name["high_memory"].condition.holds({"memory": {"used": huge, "total": 3}}) is None

    def raising_on_memory(original):
        def read(data: dict):
            if "memory" in data:
                raise OverflowError("int too large to convert to float")
            return original(data)

        return read

    memory = loaded.by_name["high_memory"]
    condition = memory.condition
    raising = dataclasses.replace(
        condition, holds=raising_on_memory(condition.holds), value=raising_on_memory(condition.value)
    )
    memory = dataclasses.replace(memory, condition=raising)
    engine = AlertEngine(RuleSet((loaded.by_name["high_cpu"], memory), loaded.source, loaded.checksum))
    feed(engine, [(0, 85)])
    engine.take_changes()
    with pytest.raises(OverflowError):
        engine.observe(
            "node_metrics", "node-001", at(1), {"cpu": {"usage": 10}, "memory": {"used": huge, "total": 3}}
        )
    assert engine.take_changes() == []  # high_cpu was not resolved by the half-read event
    assert engine.counts()["pending"] == 1
