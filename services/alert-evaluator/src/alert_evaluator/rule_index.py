"""Which rules hold for an event, without evaluating every rule.

Most alert rules compare one value with a number (`cpu.usage > 80`, `memory.used / memory.total
* 100 >= 90`). Rules comparing the same expression with the same operator form a group whose
thresholds are kept sorted: per event the expression is computed once and a bisection splits
the group into the rules that hold and those that do not. With a hundred rules over a handful
of metrics, an event costs a handful of evaluations instead of a hundred. Other rules
(`and`, `or`, `in`, text) are evaluated one by one.
"""

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alert_evaluator.rules import AlertRule, RuleSet


@dataclass(slots=True)
class ThresholdGroup:
    """Rules `<expression> <op> <threshold>` sharing expression and operator, by threshold."""

    op: str
    rules: list[AlertRule] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)

    def add(self, rule: AlertRule) -> None:
        threshold = float(rule.condition.threshold)  # type: ignore[arg-type]
        at = bisect.bisect_right(self.thresholds, threshold)
        self.thresholds.insert(at, threshold)
        self.rules.insert(at, rule)
        self.position = {r.name: i for i, r in enumerate(self.rules)}

    def value(self, data: dict[str, Any]) -> Any:
        return self.rules[0].condition.value(data)

    def holding(self, value: float) -> tuple[int, int]:
        """The index range of the rules whose condition holds for `value`."""
        thresholds = self.thresholds
        if self.op == ">":  # threshold < value
            return 0, bisect.bisect_left(thresholds, value)
        if self.op == ">=":  # threshold <= value
            return 0, bisect.bisect_right(thresholds, value)
        if self.op == "<":  # threshold > value
            return bisect.bisect_right(thresholds, value), len(thresholds)
        return bisect.bisect_left(thresholds, value), len(thresholds)  # <=: threshold >= value


@dataclass(frozen=True, slots=True)
class TypeRules:
    """The rules of one event type, grouped for evaluation."""

    groups: tuple[ThresholdGroup, ...]
    others: tuple[AlertRule, ...]


def index_rules(rules: RuleSet) -> Mapping[str, TypeRules]:
    """The rules of each event type, threshold rules on the same field and comparison grouped."""
    indexed: dict[str, TypeRules] = {}
    for event_type, type_rules in rules.by_type.items():
        groups: dict[tuple[str, str], ThresholdGroup] = {}
        others: list[AlertRule] = []
        for rule in type_rules:
            ordering = rule.condition.ordering
            if ordering is None:
                others.append(rule)
                continue
            groups.setdefault(ordering, ThresholdGroup(ordering[1])).add(rule)
        indexed[event_type] = TypeRules(tuple(groups.values()), tuple(others))
    return indexed
