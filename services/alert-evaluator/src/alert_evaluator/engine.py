"""All alerts of one evaluator: rules applied to events, timed transitions, and what changed.

Pure logic, no I/O: the evaluation loop feeds it decoded events in stream order, asks it to move
the event-time clock forward, publishes the transitions it returns and persists the entries it
reports as changed.
"""

import math
from collections.abc import Iterable, Iterator
from typing import Any

from alert_evaluator.alert_state import AlertEntry, Phase, Transition, advance, observe, resolution, schedule
from alert_evaluator.rule_index import index_rules
from alert_evaluator.rules import AlertRule, RuleSet


class AlertEngine:
    def __init__(
        self,
        rules: RuleSet,
        entries: Iterable[AlertEntry] = (),
        watermark: float = -math.inf,
        *,
        group_thresholds: bool = True,
    ) -> None:
        self.rules = rules
        self._group_thresholds = group_thresholds
        self._index = index_rules(rules, group_thresholds=group_thresholds)
        self.watermark = watermark
        """The latest event time seen: timed transitions up to it have been applied."""
        self.late_samples = 0
        # resource id → rule name → entry: one lookup per event, then one per rule.
        self._entries: dict[str, dict[str, AlertEntry]] = {}
        self._dirty: set[str] = set()  # resource ids whose alerts changed
        self._next_due = math.inf
        for entry in entries:
            self._entries.setdefault(entry.resource_id, {})[entry.rule] = entry

    def __iter__(self) -> Iterator[AlertEntry]:
        for by_rule in self._entries.values():
            yield from by_rule.values()

    def __len__(self) -> int:
        return sum(len(by_rule) for by_rule in self._entries.values())

    def counts(self) -> dict[str, int]:
        counts = {phase.value: 0 for phase in Phase}
        for entry in self:
            counts[entry.phase.value] += 1
        return counts

    def start(self) -> list[Transition]:
        """Schedule restored entries; resolve firing alerts of rules that no longer exist."""
        out = self._drop_orphans(None)
        for entry in self:
            schedule(entry, self.rules.by_name[entry.rule])
            self._next_due = min(self._next_due, entry.due)
        return out

    def observe(self, event_type: str, resource_id: str, at: float, data: dict[str, Any]) -> list[Transition]:
        """Apply one event (event time `at`) to every rule of its type."""
        if at > self.watermark:
            self.watermark = at
        rules = self._index.get(event_type)
        if rules is None:
            return []
        out: list[Transition] = []
        by_rule = self._entries.get(resource_id)
        for group in rules.groups:
            value = group.value(data)
            if value is None:
                continue  # no data for any rule of the group
            start, stop = group.holding(value)
            group_rules = group.rules
            for i in range(start, stop):
                self._sample(group_rules[i], resource_id, at, True, value, out)
            if by_rule:
                # alerts under way whose condition no longer holds
                position = group.position
                for name in list(by_rule):
                    i = position.get(name, -1)
                    if i >= 0 and not start <= i < stop:
                        self._sample(group_rules[i], resource_id, at, False, value, out)
            by_rule = self._entries.get(resource_id)
        for rule in rules.others:
            condition = rule.condition
            holds = condition.holds(data)
            if holds is None:
                continue  # no data for this rule in this event
            if not holds and (by_rule is None or rule.name not in by_rule):
                continue  # the common case: nothing under way, nothing starts
            self._sample(rule, resource_id, at, holds, condition.value(data), out)
            by_rule = self._entries.get(resource_id)
        return out

    def _sample(
        self, rule: AlertRule, resource_id: str, at: float, holds: bool, value: Any, out: list[Transition]
    ) -> None:
        by_rule = self._entries.get(resource_id)
        entry = by_rule.get(rule.name) if by_rule else None
        if entry is None and not holds:
            return
        if entry is not None and at < entry.last_seen:
            self.late_samples += 1
            return
        self._store(resource_id, rule.name, observe(entry, rule, resource_id, at, holds, value, out))

    def advance(self, now: float) -> list[Transition]:
        """Move event time to `now`: fire, expire and resolve what is due before it."""
        if now > self.watermark:
            self.watermark = now
        if self._next_due >= self.watermark:
            return []
        out: list[Transition] = []
        next_due = math.inf
        for resource_id, by_rule in list(self._entries.items()):
            for name, entry in list(by_rule.items()):
                if entry.due < self.watermark:
                    updated = advance(
                        entry, self.rules.by_name[name], self.watermark, inclusive=False, out=out
                    )
                    self._store(resource_id, name, updated)
                    if updated is None:
                        continue
                next_due = min(next_due, entry.due)
        self._next_due = next_due
        return out

    def replace_rules(self, rules: RuleSet) -> list[Transition]:
        """Use `rules` from now on, keeping the state of every rule that is still there."""
        old_rules, self.rules = self.rules, rules
        self._index = index_rules(rules, group_thresholds=self._group_thresholds)
        out = self._drop_orphans(old_rules)
        self._next_due = math.inf
        for entry in self:
            schedule(entry, rules.by_name[entry.rule])
            self._next_due = min(self._next_due, entry.due)
        return out

    def take_changes(self) -> list[tuple[str, list[AlertEntry]]]:
        """(resource id, its alerts under way; empty: none) for each resource changed since the last call."""
        changes = []
        for resource_id in self._dirty:
            by_rule = self._entries.get(resource_id)
            changes.append((resource_id, list(by_rule.values()) if by_rule else []))
        self._dirty.clear()
        return changes

    @property
    def pending_changes(self) -> int:
        return len(self._dirty)

    def _store(self, resource_id: str, rule: str, entry: AlertEntry | None) -> None:
        self._dirty.add(resource_id)
        if entry is None:
            by_rule = self._entries.get(resource_id)
            if by_rule is not None:
                by_rule.pop(rule, None)
                if not by_rule:
                    del self._entries[resource_id]
            return
        self._entries.setdefault(resource_id, {})[rule] = entry
        self._next_due = min(self._next_due, entry.due)

    def _drop_orphans(self, old_rules: RuleSet | None) -> list[Transition]:
        """Forget alerts of rules that are gone; a firing one gets its resolution first."""
        out = []
        for entry in list(self):
            if entry.rule in self.rules.by_name:
                continue
            if entry.phase is Phase.FIRING:
                old = old_rules.by_name.get(entry.rule) if old_rules is not None else None
                out.append(resolution(entry, old, self.watermark, "rule_removed"))
            self._store(entry.resource_id, entry.rule, None)
        return out
