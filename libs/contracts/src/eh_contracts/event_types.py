from enum import StrEnum


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
