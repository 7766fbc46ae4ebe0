"""Read-only views for operators: the evaluator's status, the alerts under way, the loaded rules."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from alert_evaluator.evaluation_loop import EvaluationLoop

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def _loop(request: Request) -> EvaluationLoop:
    loop: EvaluationLoop = request.app.state.evaluation_loop
    return loop


Loop = Annotated[EvaluationLoop, Depends(_loop)]


@router.get("/status", summary="This replica: role (active or standby), position, event time, rules")
async def status(loop: Loop) -> dict[str, Any]:
    try:
        holder = await loop.lease_holder()
    except Exception:  # the status page must answer while NATS is away
        holder = None
    return loop.status() | {"lease_holder": holder}


@router.get("/alerts", summary="Pending and firing alerts (on the active replica; empty on a standby)")
async def alerts(loop: Loop) -> dict[str, Any]:
    return {"replica": loop.replica_id, "role": loop.role, "alerts": loop.alerts()}


@router.get("/rules", summary="The rules in force")
async def rules(loop: Loop) -> dict[str, Any]:
    current = loop.rules
    return {
        "source": current.source,
        "checksum": current.checksum,
        "rules": [rule.describe() for rule in current.rules],
    }
