"""What an operator sees of a replica: read-only views over the supervisor, never a control."""

import math
from typing import Any

from alert_evaluator.alerts import alert_id
from alert_evaluator.replica import ReplicaSupervisor
from alert_evaluator.rules import RuleSet
from eh_contracts.times import rfc3339_from_epoch


class EvaluatorStatus:
    def __init__(self, supervisor: ReplicaSupervisor) -> None:
        self._supervisor = supervisor

    @property
    def replica_id(self) -> str:
        return self._supervisor.replica_id

    @property
    def rules(self) -> RuleSet:
        return self._supervisor.rules

    @property
    def role(self) -> str:
        return self._supervisor.role.value

    async def lease_holder(self) -> dict[str, Any] | None:
        supervisor = self._supervisor
        if not supervisor.store.is_open or not supervisor.connection.is_connected:
            return None
        return await supervisor.store.lease_holder()

    def status(self) -> dict[str, Any]:
        supervisor = self._supervisor
        step = supervisor.step
        rules = supervisor.rules
        return {
            "replica": supervisor.replica_id,
            "role": supervisor.role.value,
            "position": step.position if step is not None else 0,
            "committed": step.committed if step is not None else 0,
            "stream_time": _iso(step.engine.stream_time) if step is not None else None,
            "rules": {"source": rules.file_name, "checksum": rules.checksum, "count": len(rules.rules)},
            "alerts": step.engine.counts() if step is not None else None,
            "last_error": supervisor.last_error,
            "last_close": supervisor.last_close.value if supervisor.last_close is not None else None,
            "skipped": supervisor.dead_letters.total,
            "dead_letters": supervisor.dead_letters.as_json(),
        }

    def alerts(self) -> list[dict[str, Any]]:
        step = self._supervisor.step
        if step is None:
            return []
        return [
            {
                "alert_id": alert_id(entry.rule, entry.resource_id),
                "rule": entry.rule,
                "resource_id": entry.resource_id,
                "phase": entry.phase.value,
                "since": _iso(entry.since),
                "started_at": None if entry.started_at is None else _iso(entry.started_at),
                "value": entry.value,
            }
            for entry in step.engine
        ]


def _iso(seconds: float) -> str | None:
    if math.isinf(seconds):
        return None
    return rfc3339_from_epoch(seconds)
