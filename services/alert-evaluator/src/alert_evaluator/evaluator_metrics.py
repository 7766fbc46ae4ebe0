"""The alert-evaluator's Prometheus metrics, in one place for the step and the replica supervisor."""

from prometheus_client import Counter, Gauge, Histogram

EVALUATED = Counter("eventhandler_alert_events_evaluated", "Events the alert-evaluator evaluated.")
SKIPPED = Counter(
    "eventhandler_alert_events_skipped",
    "Stored messages not evaluated, by reason: malformed, invalid, wrong_subject, no_id, future "
    "(timestamp beyond the clock skew), evaluation_error (a condition raised on the event).",
    ["reason"],
)
TRANSITIONS = Counter(
    "eventhandler_alert_transitions", "Alert events published, by rule and state.", ["rule", "state"]
)
ALREADY_PUBLISHED = Counter(
    "eventhandler_alert_transitions_already_published",
    "Alert events found already stored on their subject after a restart, and not published again.",
)
ACTIVE = Gauge("eventhandler_alert_evaluator_active", "1 while this replica holds the lease and evaluates.")
ALERTS = Gauge(
    "eventhandler_alert_evaluator_alerts", "Alerts under way on this replica, by phase.", ["phase"]
)
POSITION = Gauge("eventhandler_alert_evaluator_position", "Stream sequence of the last evaluated event.")
RELOADS = Counter("eventhandler_alert_rule_reloads", "Rules file reloads, by outcome.", ["outcome"])
STEP_SECONDS = Histogram(
    "eventhandler_alert_step_seconds",
    "Time to evaluate, publish, commit and acknowledge one fetched batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
STREAM_REPLACED = Counter(
    "eventhandler_alert_stream_replaced",
    "Times the EVENTS stream was found deleted and created again; evaluation restarted from its start.",
)
