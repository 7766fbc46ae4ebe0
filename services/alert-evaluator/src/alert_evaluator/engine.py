"""All alerts of one evaluator: rules applied to events, timed transitions, and what changed.

Pure logic, no I/O: the evaluation step feeds it decoded events in stream order, asks it to move
the clock forward, publishes the transitions it returns and persists the entries it reports as
changed.

Two clocks, so that a producer's clock or delays do not decide for others (see `ResourceClock`):
- stream time, the time JetStream stored the events (the newest seen): one clock for everything,
  the same in every replay, and the only one that runs while a resource is silent;
- each resource's own event time, the timestamps of its events: the alert's `for`, staleness and
  resolve delay are measured in it, so a producer whose clock runs behind, or a batch of samples
  uploaded late, is judged by what its timestamps say, never against another producer's clock.
Between two of its events, a resource's clock runs at the pace of stream time from its last
event: a resource that falls silent goes stale after `staleness` of stream time.
"""

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from alert_evaluator.alert_state import AlertEntry, Phase, Transition, advance, observe, resolution, schedule
from alert_evaluator.rule_index import TypeRules, index_rules
from alert_evaluator.rules import AlertRule, RuleSet


@dataclass(frozen=True, slots=True)
class ResourceClock:
    """A resource's clock, anchored at its newest event: event time `event_time`, stored at stream
    time `stream_time`. At stream time `now` the resource's time is `event_time + now - stream_time`."""

    event_time: float
    stream_time: float

    @property
    def offset(self) -> float:
        """Stream time minus the resource's time (its clock's lag plus its delivery delay)."""
        return self.stream_time - self.event_time

    def to_record(self) -> list[float]:
        return [self.event_time, self.stream_time]

    @classmethod
    def from_record(cls, record: Any) -> "ResourceClock":
        event_time, stream_time = record
        return cls(float(event_time), float(stream_time))


Sample = tuple[AlertRule, bool, Any]
"""One rule's observation of one event: (rule, does its condition hold, the value)."""


class AlertEngine:
    def __init__(
        self,
        rules: RuleSet,
        entries: Iterable[AlertEntry] = (),
        stream_time: float = -math.inf,
        clocks: dict[str, ResourceClock] | None = None,
    ) -> None:
        self.rules = rules
        self._index = self.index(rules)
        self.stream_time = stream_time
        """The latest stream time seen: timed transitions up to it have been applied."""
        self.late_samples = 0
        # resource id → rule name → entry: one lookup per event, then one per rule.
        self._entries: dict[str, dict[str, AlertEntry]] = {}
        # resource id → its clock, for the resources with alerts under way
        self._clocks: dict[str, ResourceClock] = {}
        self._dirty: set[str] = set()  # resource ids whose alerts changed
        self._next_due = math.inf  # stream time of the earliest timed transition (a lower bound)
        for entry in entries:
            self._entries.setdefault(entry.resource_id, {})[entry.rule] = entry
        for resource_id, by_rule in self._entries.items():
            clock = (clocks or {}).get(resource_id)
            if clock is None:  # state stored before clocks were: the resource on time
                newest = max(e.last_seen for e in by_rule.values())
                clock = ResourceClock(newest, newest)
            self._clocks[resource_id] = clock

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
        self._schedule_all()
        return out

    def clock(self, resource_id: str) -> ResourceClock | None:
        return self._clocks.get(resource_id)

    def observe(
        self, event_type: str, resource_id: str, at: float, data: dict[str, Any], stored: float | None = None
    ) -> list[Transition]:
        """Apply one event (event time `at`, stored at stream time `stored`; None: stored when it
        happened) to every rule of its type.

        Raises whatever a condition raises on this event's data; then nothing has changed.
        """
        if stored is None:
            stored = at
        if stored > self.stream_time:
            self.stream_time = stored
        rules = self._index.get(event_type)
        if rules is None:
            return []
        by_rule = self._entries.get(resource_id)
        samples = self._samples(rules, data, by_rule)
        if not samples:
            return []
        clock = self._clocks.get(resource_id)
        if clock is None or at >= clock.event_time:
            clock = self._clocks[resource_id] = ResourceClock(at, stored)
            if by_rule:  # the resource's time moved: so did its alerts' due times
                offset = clock.offset
                for entry in by_rule.values():
                    self._next_due = min(self._next_due, entry.due + offset)
        out: list[Transition] = []
        for rule, holds, value in samples:
            self._sample(rule, resource_id, at, holds, value, out)
        if resource_id not in self._entries:
            self._clocks.pop(resource_id, None)
        return out

    @staticmethod
    def _samples(
        rules: TypeRules, data: dict[str, Any], by_rule: dict[str, AlertEntry] | None
    ) -> list[Sample]:
        """What each rule of the event's type observes in it; reads the state, changes nothing, so
        that an event whose data makes a condition raise leaves no half-applied change."""
        samples: list[Sample] = []
        for group in rules.groups:
            value = group.value(data)
            if value is None:
                continue  # no data for any rule of the group
            start, stop = group.holding(value)
            group_rules = group.rules
            samples += [(group_rules[i], True, value) for i in range(start, stop)]
            if by_rule:
                # alerts under way whose condition no longer holds
                position = group.position
                for name in by_rule:
                    i = position.get(name, -1)
                    if i >= 0 and not start <= i < stop:
                        samples.append((group_rules[i], False, value))
        for rule in rules.others:
            condition = rule.condition
            holds = condition.holds(data)
            if holds is None:
                continue  # no data for this rule in this event
            if not holds and (by_rule is None or rule.name not in by_rule):
                continue  # the common case: nothing under way, nothing starts
            samples.append((rule, holds, condition.value(data)))
        return samples

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
        """Move stream time to `now`: fire, expire and resolve what is due before it, each
        resource in its own time."""
        if now > self.stream_time:
            self.stream_time = now
        if self._next_due >= self.stream_time:
            return []
        out: list[Transition] = []
        next_due = math.inf
        for resource_id, by_rule in list(self._entries.items()):
            offset = self._clocks[resource_id].offset
            resource_now = self.stream_time - offset
            for name, entry in list(by_rule.items()):
                if entry.due < resource_now:
                    updated = advance(entry, self.rules.by_name[name], resource_now, inclusive=False, out=out)
                    self._store(resource_id, name, updated)
                    if updated is None:
                        continue
                next_due = min(next_due, entry.due + offset)
            if resource_id not in self._entries:
                self._clocks.pop(resource_id, None)
        self._next_due = next_due
        return out

    def index(self, rules: RuleSet) -> Mapping[str, TypeRules]:
        """The rules of each event type, grouped for evaluation (`rule_index`)."""
        return index_rules(rules)

    def replace_rules(self, rules: RuleSet) -> list[Transition]:
        """Use `rules` from now on, keeping the state of every rule that is still there."""
        old_rules, self.rules = self.rules, rules
        self._index = self.index(rules)
        out = self._drop_orphans(old_rules)
        self._schedule_all()
        return out

    def _schedule_all(self) -> None:
        self._next_due = math.inf
        for resource_id, by_rule in self._entries.items():
            offset = self._clocks[resource_id].offset
            for entry in by_rule.values():
                schedule(entry, self.rules.by_name[entry.rule])
                self._next_due = min(self._next_due, entry.due + offset)

    def take_changes(self) -> list[tuple[str, list[AlertEntry], ResourceClock | None]]:
        """(resource id, its alerts under way (empty: none), its clock) for each resource changed
        since the last call."""
        changes = []
        for resource_id in self._dirty:
            by_rule = self._entries.get(resource_id)
            if by_rule:
                changes.append((resource_id, list(by_rule.values()), self._clocks.get(resource_id)))
            else:
                changes.append((resource_id, [], None))
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
        self._next_due = min(self._next_due, entry.due + self._clocks[resource_id].offset)

    def _drop_orphans(self, old_rules: RuleSet | None) -> list[Transition]:
        """Forget alerts of rules that are gone; a firing one gets its resolution first."""
        out = []
        for entry in list(self):
            if entry.rule in self.rules.by_name:
                continue
            if entry.phase is Phase.FIRING:
                old = old_rules.by_name.get(entry.rule) if old_rules is not None else None
                clock = self._clocks[entry.resource_id]
                out.append(resolution(entry, old, self.stream_time - clock.offset, "rule_removed"))
            self._store(entry.resource_id, entry.rule, None)
            if entry.resource_id not in self._entries:
                self._clocks.pop(entry.resource_id, None)
        return out
