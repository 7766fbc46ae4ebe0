"""Rules files for tests, written as YAML like an operator would."""

from datetime import UTC, datetime, timedelta

from alert_evaluator.rules import RuleSet
from alert_evaluator.rules_file import parse_rules

# Test timelines start now: event time is global, and the evaluator's own system_log events
# (stamped with the real clock) move it too. Settings allow events up to an hour ahead.
T0 = datetime.now(UTC).replace(second=0, microsecond=0)

CPU_RULE = """
  - name: high_cpu
    event: node_metrics
    condition: cpu.usage > 80
    for: 5m
    level: warning
    category: resource
    title: High CPU Usage
    message: Node {resource_id} CPU usage is above {threshold}%
    actions:
      - type: scale_up
        target: "{resource_id}"
        params: {cpu_limit: 100}
"""

OFFLINE_RULE = """
  - name: node_offline
    event: node_status
    condition: new_state == "offline"
    level: critical
    category: availability
    title: Node Offline
    message: Node {resource_id} is offline
"""

CONTAINER_RULE = """
  - name: container_failed
    event: container_status
    condition: new_state == "stopped" and exit_code != 0
    level: error
    category: container
    title: Container Failed
    message: Container {resource_id} exited with {value}
"""


def rules(*bodies: str, defaults: str = "staleness: 2m") -> RuleSet:
    return parse_rules(f"defaults: {{{defaults}}}\nrules:\n{''.join(bodies)}".encode(), "test.yaml")


def at(minutes: float) -> float:
    return (T0 + timedelta(minutes=minutes)).timestamp()


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


DEFAULT_RULE_NAMES = {
    "high_cpu",
    "high_memory",
    "disk_almost_full",
    "gpu_overheating",
    "node_offline",
    "pipeline_failed",
    "container_failed",
}
"""What the packaged default rules file must hold: the seed's example and the issue's list."""
