"""The events the evaluator publishes: `system_alert` for transitions, `system_log` for its own news.

Alert events are deterministic: the same transition always gives the same event id (the
`Nats-Msg-Id`), so a retry after a crash is dropped by JetStream's duplicate window, and the
same resource id (the alert id, `<rule>:<resource>`), so a dashboard follows one alert from
firing to resolved on one subject.
"""

import hashlib
from datetime import UTC, datetime
from typing import Any, Final

from alert_evaluator.alert_state import Transition
from alert_evaluator.rules import duration_text, render
from eh_contracts.envelope import EVENT_ID_MAX_LENGTH, SystemAlertEvent, SystemLogEvent
from eh_contracts.subjects import RESOURCE_ID_MAX_LENGTH

COMPONENT: Final = "alert-evaluator"
_REASON_SUFFIX: Final = {"no_data": " (no data)", "rule_removed": " (rule removed)"}


def alert_id(rule: str, resource_id: str) -> str:
    """`<rule>:<resource>`, or `<rule>:<digest of resource>` when that would be too long."""
    readable = f"{rule}:{resource_id}"
    if len(readable) <= RESOURCE_ID_MAX_LENGTH:
        return readable
    return f"{rule}:{_digest(resource_id, 32)}"


def alert_event_id(alert: str, state: str, started_at: float) -> str:
    """One id per alert, episode (its start) and state: a retry has the same id."""
    started_ms = round(started_at * 1000)
    readable = f"{alert}:{state}:{started_ms}"
    if len(readable) <= EVENT_ID_MAX_LENGTH:
        return readable
    return f"alert:{_digest(readable, 48)}"


def alert_event(transition: Transition) -> SystemAlertEvent:
    """The `system_alert` event of a firing or a resolution."""
    rule = transition.rule
    ident = alert_id(transition.rule_name, transition.resource_id)
    value = transition.value
    details: dict[str, Any] = {"current_value": float(value) if isinstance(value, int | float) else None}
    data: dict[str, Any]
    if rule is None:
        data = {
            "level": "info",
            "category": "alerting",
            "title": f"Alert of removed rule {transition.rule_name} resolved",
            "message": f"Rule {transition.rule_name} no longer exists; its alert for "
            f"{transition.resource_id} is resolved",
            "actions": [],
        }
    else:
        threshold = rule.condition.threshold
        values = {
            "resource_id": transition.resource_id,
            "value": value if value is not None else "",
            "threshold": threshold,
            "duration": rule.duration_text,
            "rule": rule.name,
        }
        firing = transition.state == "firing"
        message = render(rule.message if firing else rule.resolved_message, values)
        details |= {
            "threshold": float(threshold) if isinstance(threshold, int | float) else None,
            "duration": duration_text(rule.for_seconds),
        }
        data = {
            "level": rule.level,
            "category": rule.category,
            "title": render(rule.title, values),
            "message": message + ("" if firing else _REASON_SUFFIX.get(transition.reason, "")),
            "actions": [_action(a.type, a.target, a.params, values) for a in rule.actions] if firing else [],
        }
    if transition.state == "resolved":
        details["reason"] = transition.reason
    return SystemAlertEvent.model_validate(
        {
            "id": alert_event_id(ident, transition.state, transition.started_at),
            "event": "system_alert",
            "timestamp": _time(transition.at),
            "resource_id": ident,
            "data": data
            | {
                "source": transition.resource_id,
                "details": details,
                "state": transition.state,
                "rule": transition.rule_name,
                "started_at": _time(transition.started_at),
            },
        }
    )


def log_event(level: str, message: str, source: str, context: dict[str, Any]) -> SystemLogEvent:
    """A `system_log` event about the evaluator itself (rules loaded, reloaded, rejected)."""
    return SystemLogEvent.model_validate(
        {
            "event": "system_log",
            "resource_id": COMPONENT,
            "timestamp": datetime.now(UTC),
            "data": {
                "level": level,
                "component": COMPONENT,
                "message": message,
                "source": source,
                "context": context,
            },
        }
    )


def _action(kind: str, target: str | None, params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "target": render(target, values) if target else None, "params": params}


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]
