"""The life of one alert, per (rule, resource): inactive → pending → firing → resolved.

Time is event time (seconds since the epoch, from event timestamps), never the clock of the
process, so the same events always produce the same alerts at the same times, whatever the
batching, restarts or replay speed.

- The condition first holds at `since`: pending.
- A value holds from its sample until the next sample, or until `staleness` has passed.
- Pending for `for` seconds with the value holding all along: firing, at exactly `since + for`.
- Pending and the condition stops holding, or the value goes stale first: inactive, no event.
- Firing and the condition stops holding at `cleared_at`: resolved at `cleared_at + resolve_delay`,
  unless it holds again before that (then it simply stays firing: no second firing event).
- Firing and the value goes stale: resolved at `last_seen + staleness` (no data).

An entry exists only while pending or firing; inactive is the absence of an entry, so memory
holds only alerts that are under way.
"""

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from alert_evaluator.rules import AlertRule

Value = float | int | str | None
NEVER: Final = math.inf


class Phase(StrEnum):
    PENDING = "pending"
    FIRING = "firing"


class _Due(StrEnum):
    FIRE = "fire"
    EXPIRE = "expire"  # pending, value went stale
    RESOLVE = "resolve"  # firing, stopped holding for resolve_delay
    STALE = "stale"  # firing, value went stale
    NOTHING = "nothing"


ResolveReason = Literal["condition_cleared", "no_data", "rule_removed"]


@dataclass(slots=True)
class AlertEntry:
    """A pending or firing alert; times in event-time seconds."""

    rule: str
    resource_id: str
    phase: Phase
    since: float
    last_seen: float
    value: Value
    started_at: float | None = None
    cleared_at: float | None = None
    due: float = NEVER
    due_kind: _Due = _Due.NOTHING

    def to_record(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "resource_id": self.resource_id,
            "phase": self.phase.value,
            "since": self.since,
            "last_seen": self.last_seen,
            "value": self.value,
            "started_at": self.started_at,
            "cleared_at": self.cleared_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "AlertEntry":
        return cls(
            rule=record["rule"],
            resource_id=record["resource_id"],
            phase=Phase(record["phase"]),
            since=float(record["since"]),
            last_seen=float(record["last_seen"]),
            value=record.get("value"),
            started_at=record.get("started_at"),
            cleared_at=record.get("cleared_at"),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert event to publish: a firing or a resolution.

    `rule` is None only for the resolution of an alert whose rule was removed while the
    evaluator was not running: its templates are gone with it.
    """

    rule_name: str
    rule: AlertRule | None
    resource_id: str
    state: Literal["firing", "resolved"]
    at: float
    started_at: float
    value: Value
    reason: Literal["condition_met"] | ResolveReason


def schedule(entry: AlertEntry, rule: AlertRule) -> None:
    """Set when the entry's next timed transition is due, if no new sample changes it."""
    stale_at = NEVER if rule.staleness_seconds is None else entry.last_seen + rule.staleness_seconds
    if entry.phase is Phase.PENDING:
        fire_at = entry.since + rule.for_seconds
        entry.due, entry.due_kind = (fire_at, _Due.FIRE) if fire_at <= stale_at else (stale_at, _Due.EXPIRE)
        return
    resolve_at = NEVER if entry.cleared_at is None else entry.cleared_at + rule.resolve_delay_seconds
    if resolve_at <= stale_at:
        entry.due, entry.due_kind = resolve_at, (_Due.RESOLVE if resolve_at < NEVER else _Due.NOTHING)
    else:
        entry.due, entry.due_kind = stale_at, _Due.STALE


def advance(
    entry: AlertEntry, rule: AlertRule, now: float, *, inclusive: bool, out: list[Transition]
) -> AlertEntry | None:
    """Apply the timed transitions due before `now` (or at it, when `inclusive`).

    Returns the entry, or None when it became inactive. Alert events are appended to `out`.
    """
    while entry.due < now or (inclusive and entry.due == now):
        at = entry.due
        kind = entry.due_kind
        if kind is _Due.FIRE:
            entry.phase = Phase.FIRING
            entry.started_at = at
            entry.cleared_at = None
            out.append(
                Transition(rule.name, rule, entry.resource_id, "firing", at, at, entry.value, "condition_met")
            )
            schedule(entry, rule)
            continue
        if kind in (_Due.RESOLVE, _Due.STALE):
            reason: ResolveReason = "condition_cleared" if kind is _Due.RESOLVE else "no_data"
            out.append(resolution(entry, rule, at, reason))
        return None  # resolved, or a pending alert whose value went stale: inactive
    return entry


def observe(
    entry: AlertEntry | None,
    rule: AlertRule,
    resource_id: str,
    at: float,
    holds: bool,
    value: Value,
    out: list[Transition],
) -> AlertEntry | None:
    """Apply one sample of the condition at event time `at`.

    A sample older than the entry's last one is ignored (returned entry unchanged): an alert
    never goes back in time.
    """
    if entry is not None:
        if at < entry.last_seen:
            return entry
        entry = advance(entry, rule, at, inclusive=False, out=out)
    if entry is None:
        if not holds:
            return None
        entry = AlertEntry(rule.name, resource_id, Phase.PENDING, since=at, last_seen=at, value=value)
    elif entry.phase is Phase.PENDING:
        if not holds:
            return None
        entry.last_seen = at
        entry.value = value
    else:
        entry.last_seen = at
        entry.value = value
        if holds:
            entry.cleared_at = None
        elif entry.cleared_at is None:
            entry.cleared_at = at
    schedule(entry, rule)
    return advance(entry, rule, at, inclusive=True, out=out)


def resolution(entry: AlertEntry, rule: AlertRule | None, at: float, reason: ResolveReason) -> Transition:
    assert entry.started_at is not None
    return Transition(
        entry.rule, rule, entry.resource_id, "resolved", at, entry.started_at, entry.value, reason
    )
