from enum import StrEnum
from typing import Final


class EventKind(StrEnum):
    """What events of a type report, which decides how services keep, evaluate and deliver them."""

    STATUS = "status"
    """A resource changed state; nothing follows until the next change, so the value never goes
    stale. The collector keeps each resource's current state and stores only real transitions."""
    METRICS = "metrics"
    """A periodic sample: only the newest per resource matters to a reader that cannot keep up."""
    PROGRESS = "progress"
    """How far a pipeline has come."""
    ALERT = "alert"
    """Made by the alert-evaluator from the other events (which is why it never reads them)."""
    LOG = "log"
    """A message for people."""


class EventType(StrEnum):
    """The eight kinds of event; the value is the `event` field and the second subject token."""

    NODE_STATUS = "node_status"
    NODE_METRICS = "node_metrics"
    PIPELINE_STATUS = "pipeline_status"
    PIPELINE_PROGRESS = "pipeline_progress"
    CONTAINER_STATUS = "container_status"
    CONTAINER_METRICS = "container_metrics"
    SYSTEM_ALERT = "system_alert"
    SYSTEM_LOG = "system_log"

    @property
    def kind(self) -> EventKind:
        return _KINDS[self]

    @property
    def resource(self) -> str:
        """What the resource id names: `node`, `pipeline`, `container` or `system`."""
        return self.value.partition("_")[0]

    @classmethod
    def of_kind(cls, kind: EventKind) -> frozenset["EventType"]:
        return frozenset(t for t in cls if t.kind is kind)


_KINDS: Final = {
    EventType.NODE_STATUS: EventKind.STATUS,
    EventType.NODE_METRICS: EventKind.METRICS,
    EventType.PIPELINE_STATUS: EventKind.STATUS,
    EventType.PIPELINE_PROGRESS: EventKind.PROGRESS,
    EventType.CONTAINER_STATUS: EventKind.STATUS,
    EventType.CONTAINER_METRICS: EventKind.METRICS,
    EventType.SYSTEM_ALERT: EventKind.ALERT,
    EventType.SYSTEM_LOG: EventKind.LOG,
}
