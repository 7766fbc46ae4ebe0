"""Read-only views for operators: the evaluator's status, the alerts under way, the loaded rules."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from alert_evaluator.evaluator_status import EvaluatorStatus
from eh_runtime.auth.requests import require_operator
from eh_runtime.dependencies import app_state

# Operators only (`eh.admin`): rules and alert state say how the farm is watched.
router = APIRouter(prefix="/api/v1", tags=["alerts"], dependencies=[Depends(require_operator)])


Status = Annotated[EvaluatorStatus, Depends(app_state("evaluator_status"))]


@router.get(
    "/status",
    summary="This replica: role (active or standby), position, stream time, rules, skipped messages",
)
async def status(view: Status) -> dict[str, Any]:
    try:
        holder = await view.lease_holder()
    except Exception:  # the status page must answer while NATS is away
        holder = None
    return view.status() | {"lease_holder": holder}


@router.get("/alerts", summary="Pending and firing alerts (on the active replica; empty on a standby)")
async def alerts(view: Status) -> dict[str, Any]:
    return {"replica": view.replica_id, "role": view.role, "alerts": view.alerts()}


@router.get("/rules", summary="The rules in force")
async def rules(view: Status) -> dict[str, Any]:
    current = view.rules
    return {
        "source": current.file_name,
        "checksum": current.checksum,
        "rules": [rule.describe() for rule in current.rules],
    }
