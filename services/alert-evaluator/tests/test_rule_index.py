"""Grouped threshold evaluation decides exactly what evaluating every rule would."""

import random

from rules_helpers import at, rules

from alert_evaluator.engine import AlertEngine
from alert_evaluator.rule_index import index_rules

OPS = (">", ">=", "<", "<=")


def many_rules(rng: random.Random) -> str:
    bodies = []
    for i in range(60):
        op = rng.choice(OPS)
        threshold = rng.choice([10, 20, 50, 50.5, 80, 90])
        expression = rng.choice(["cpu.usage", "memory.used / memory.total * 100", "gpu.usage"])
        condition = f"{expression} {op} {threshold}"
        if i % 7 == 0:
            condition += " and cpu.cores >= 4"
        bodies.append(
            f"""
  - name: r{i}
    event: node_metrics
    condition: {condition}
    level: info
    category: c
    title: t
    message: m
"""
        )
    return "".join(bodies)


def sample(rng: random.Random) -> dict:
    data: dict = {"cpu": {"usage": rng.choice([10, 20, 50, 50.5, 80, 90, 33.3]), "cores": rng.choice([2, 8])}}
    if rng.random() < 0.7:
        data["memory"] = {"used": rng.choice([0, 10, 50, 90]), "total": rng.choice([0, 100])}
    if rng.random() < 0.5:
        data["gpu"] = {"usage": rng.choice([20, 50, 80])}
    return data


def test_the_rules_that_hold_are_the_same_as_evaluating_each_rule():
    rng = random.Random(7)
    rule_set = rules(many_rules(rng))
    index = index_rules(rule_set)["node_metrics"]
    assert len(index.groups) >= 6
    assert len(index.others) == 9
    for _ in range(500):
        data = sample(rng)
        expected = {r.name for r in rule_set.rules if r.condition.holds(data)}
        held = {r.name for r in index.others if r.condition.holds(data)}
        for group in index.groups:
            value = group.value(data)
            if value is not None:
                start, stop = group.holding(value)
                held |= {r.name for r in group.rules[start:stop]}
        assert held == expected, data


def test_the_engine_fires_and_resolves_each_rule_as_if_evaluated_one_by_one():
    rng = random.Random(11)
    rule_set = rules(many_rules(rng), defaults="staleness: never")
    engine = AlertEngine(rule_set)
    under_way: dict[str, bool] = {}
    for minute in range(300):
        data = sample(rng)
        out = engine.observe("node_metrics", "node-1", at(minute), data)
        for rule in rule_set.rules:
            holds = rule.condition.holds(data)
            if holds is not None:  # for: 0 and no resolve delay: the alert follows the condition
                under_way[rule.name] = holds
        assert len(out) == len({t.rule_name for t in out})  # at most one event per rule and sample
        firing_now = {e.rule for e in engine}
        assert firing_now == {name for name, holds in under_way.items() if holds}
