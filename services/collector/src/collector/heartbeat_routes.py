"""`POST /api/v1/nodes/{node_id}/heartbeat`: a node says it is alive, optionally with its metrics."""

from typing import Annotated, Any, Final

import pydantic_core
import structlog
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, TypeAdapter, ValidationError

from collector.deps import HeartbeatsDep, IngestorDep, SettingsDep
from collector.ingest import STORE_UNAVAILABLE_MESSAGE
from collector.intake import Intake
from collector.routes import (
    JSON_MEDIA_TYPE,
    json_response,
    read_body,
    require_media_type,
)
from eh_contracts.payloads import IpAddress, NodeMetrics
from eh_contracts.records import parse_record
from eh_contracts.subjects import RESOURCE_ID_SCHEMA, validate_resource_id
from eh_runtime.auth.requests import ProducerDep
from eh_runtime.service import RETRY_AFTER_SECONDS, STORE_UNAVAILABLE, error_detail

log = structlog.get_logger(__name__)


class HeartbeatBody(BaseModel):
    """Everything optional: an empty body is a heartbeat too."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ip: IpAddress | None = None
    metrics: NodeMetrics | None = None


_BODY = TypeAdapter(HeartbeatBody)


def heartbeat_body_schemas() -> dict[str, Any]:
    """`HeartbeatBody` and the models it refers to, for the OpenAPI document's components."""
    schema = HeartbeatBody.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return definitions | {"HeartbeatBody": schema}


NodeId = Annotated[
    str,
    Path(description="The node's resource id", json_schema_extra=RESOURCE_ID_SCHEMA),
    AfterValidator(validate_resource_id),
]
HEARTBEAT_REQUEST_BODY: Final = {
    "required": False,
    "content": {JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/HeartbeatBody"}}},
}

router = APIRouter(prefix="/api/v1", tags=["heartbeats"])
ROUTINE_ROUTES: Final = frozenset({"/api/v1/nodes/{node_id}/heartbeat"})
"""Every node calls these every few seconds: their access log lines are at debug level."""


@router.post(
    "/nodes/{node_id}/heartbeat",
    status_code=202,
    summary="Record a node heartbeat",
    description=(
        "The first heartbeat of a node, or the first after it went offline, stores a `node_status` "
        "event offline/unknown → online (reason `heartbeat_received`, details `ip` and "
        "`last_heartbeat`). `metrics` (the `data` of a `node_metrics` event) is stored as a "
        "`node_metrics` event. Without a heartbeat for COLLECTOR_HEARTBEAT_TIMEOUT the node becomes "
        "offline (reason `heartbeat_timeout`)."
    ),
    responses={
        401: {"description": "No token, or a bad or expired one"},
        403: {"description": "The token may not publish node_status (or node_metrics) for this node"},
        415: {"description": "Content-Type is not application/json (also for an empty body)"},
        422: {"description": "Invalid node id or body"},
        503: {"description": "NATS unavailable"},
    },
    openapi_extra={"requestBody": HEARTBEAT_REQUEST_BODY},
)
async def heartbeat(
    node_id: NodeId,
    request: Request,
    settings: SettingsDep,
    heartbeats: HeartbeatsDep,
    ingestor: IngestorDep,
    producer: ProducerDep,
) -> Response:
    # Also for an empty body: a page cannot send application/json cross-site without a preflight,
    # so it cannot forge a heartbeat on a logged-in operator's behalf.
    require_media_type(request, {JSON_MEDIA_TYPE})
    body = await read_body(request, int(settings.max_body_bytes))
    try:
        beat = _BODY.validate_json(body) if body.strip() else HeartbeatBody()
    except ValidationError as error:
        detail = [
            error_detail(e["loc"], str(e["msg"]).removeprefix("Value error, "), e["type"])
            for e in error.errors(include_url=False)
        ]
        return json_response({"detail": detail}, 422)
    assert producer.publish is not None  # ProducerDep refuses a token without it
    needed = ["node_status", "node_metrics"] if beat.metrics is not None else ["node_status"]
    for event_type in needed:
        if not producer.publish.permits(event_type, node_id):
            message = f"your token may not publish {event_type} for node {node_id!r}; {producer.publish}"
            return json_response({"detail": message}, 403)
    ip = str(beat.ip) if beat.ip is not None else None
    transition = await heartbeats.beat(node_id, ip)
    answer: dict[str, Any] = {
        "node_id": node_id,
        "state": transition.state,
        "transition": {"status": transition.status, "seq": transition.seq},
    }
    if transition.status == "failed":
        log.warning("heartbeat transition not stored", node_id=node_id, error=transition.error)
        answer["transition"] |= {"error": STORE_UNAVAILABLE_MESSAGE, "code": STORE_UNAVAILABLE}
    status = 503 if transition.status == "failed" else 202
    if beat.metrics is not None:
        event = parse_record(
            pydantic_core.to_json(
                {
                    "event": "node_metrics",
                    "resource_id": node_id,
                    "data": beat.metrics.model_dump(mode="json", exclude_unset=True),
                }
            )
        )
        (result,) = await ingestor.ingest(Intake(single=True, events={0: event}))
        answer["metrics"] = result.as_json(single=True)
        if result.status == "failed":
            status = 503
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    return json_response(answer, status, headers)
