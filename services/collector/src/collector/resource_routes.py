"""`GET /api/v1/resources/{kind}[/{id}]`: the current state of the farm, and where the stream stands.

`stream_seq` is the last sequence of the EVENTS stream, read *before* the states. A transition is
claimed in the state bucket before its event is stored, so every transition stored up to
`stream_seq` is in the answer: a dashboard draws the farm from it, then opens the SSE stream with
`Last-Event-ID: <stream_seq>` and misses nothing (a transition may arrive that it already has:
applying it again changes nothing).
"""

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response
from pydantic import AfterValidator

from collector.deps import ServiceDep, StatesDep
from collector.resource_states import STATE_FIELDS, ResourceKind
from collector.routes import json_response
from eh_contracts.subjects import RESOURCE_ID_SCHEMA, validate_resource_id
from eh_runtime.auth.requests import SubscriberDep
from eh_runtime.service import Service
from eh_runtime.stream import EVENTS_STREAM

log = structlog.get_logger(__name__)

ResourceIdPath = Annotated[
    str,
    Path(description="The resource id", json_schema_extra=RESOURCE_ID_SCHEMA),
    AfterValidator(validate_resource_id),
]

router = APIRouter(prefix="/api/v1", tags=["resources"])


# A state is what the last status event of its resource said: readable by who may read that event.
_STATUS_TYPE: dict[str, str] = {fields.kind: event_type for event_type, fields in STATE_FIELDS.items()}


async def _stream_seq(service: Service) -> int:
    info = await service.nats.jetstream().stream_info(EVENTS_STREAM)
    return int(info.state.last_seq)


@router.get(
    "/resources/{kind}",
    summary="Current state of every node, pipeline or container",
    description="Only the resources the token may read (`eh.subscribe`) are listed.",
    responses={
        401: {"description": "No token, or a bad or expired one"},
        403: {"description": "The token may not read this kind's status events"},
        422: {"description": "Unknown kind"},
        503: {"description": "NATS unavailable"},
    },
)
async def list_resources(
    kind: ResourceKind, service: ServiceDep, states: StatesDep, subscriber: SubscriberDep
) -> Response:
    grant = subscriber.subscribe
    assert grant is not None  # SubscriberDep refuses a token without it
    if not grant.permits_type(_STATUS_TYPE[kind]):
        raise HTTPException(403, f"your token may not read {_STATUS_TYPE[kind]} events; {grant}")
    stream_seq = await _stream_seq(service)
    resources = await states.list(kind)
    body: dict[str, Any] = {
        "kind": kind,
        "stream_seq": stream_seq,
        "resources": [state.public() for state in resources if grant.permits_resource(state.resource_id)],
    }
    return json_response(body, 200)


@router.get(
    "/resources/{kind}/{resource_id}",
    summary="Current state of one node, pipeline or container",
    responses={
        401: {"description": "No token, or a bad or expired one"},
        403: {"description": "The token may not read this resource's status events"},
        404: {"description": "No state known"},
        422: {"description": "Invalid kind or id"},
        503: {"description": "NATS unavailable"},
    },
)
async def get_resource(
    kind: ResourceKind,
    resource_id: ResourceIdPath,
    service: ServiceDep,
    states: StatesDep,
    subscriber: SubscriberDep,
) -> Response:
    grant = subscriber.subscribe
    assert grant is not None  # SubscriberDep refuses a token without it
    if not grant.permits(_STATUS_TYPE[kind], resource_id):
        raise HTTPException(403, f"your token may not read {_STATUS_TYPE[kind]} of {resource_id!r}; {grant}")
    stream_seq = await _stream_seq(service)
    state = await states.get(kind, resource_id)
    if state is None:
        raise HTTPException(404, f"no state known for {kind} {resource_id!r}")
    return json_response({"kind": kind, "stream_seq": stream_seq, **state.public()}, 200)
