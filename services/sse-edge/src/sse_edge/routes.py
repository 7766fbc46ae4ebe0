"""`GET /api/v1/events`: live events as Server-Sent Events, filtered by type and resource id."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from eh_runtime.service import Service
from sse_edge.event_stream import EventStreamResponse
from sse_edge.fanout import ClientStream, FanoutIndex
from sse_edge.filters import subject_filter_from_query
from sse_edge.settings import EdgeSettings
from sse_edge.sse import control_frame, retry_frame

router = APIRouter(prefix="/api/v1", tags=["events"])

SSE_RESPONSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "An event stream. Each event: `id:` its JetStream stream sequence, `event:` its type, "
            "`data:` the stored envelope JSON. Control events: `stream.ready` (first; the effective "
            "filters), `stream.overflow` and `stream.shutdown` (last, before the server closes). "
            "Comment lines are heartbeats."
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    422: {"description": "A filter value is invalid; `detail` names the parameter"},
}


@router.get(
    "/events",
    summary="Subscribe to events (Server-Sent Events)",
    response_class=EventStreamResponse,
    status_code=200,
    responses=SSE_RESPONSE_DOC,
)
async def stream_events(
    request: Request,
    type: Annotated[
        list[str],
        Query(
            description="Event types, repeated or comma-separated (`node_status,node_metrics`). None: all."
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    resource_id: Annotated[
        list[str],
        Query(description="Resource ids, repeated or comma-separated. None: all."),
    ] = [],  # noqa: B006
) -> EventStreamResponse:
    service: Service = request.app.state.service
    settings: EdgeSettings = request.app.state.service.settings
    index: FanoutIndex = request.app.state.fanout
    subject_filter = subject_filter_from_query(type, resource_id, settings.max_filter_values)
    peer = request.client.host if request.client else "unknown"
    client = ClientStream(subject_filter, int(settings.client_buffer_bytes), peer)
    if service.stopping.is_set():
        client.close("shutdown")
    opening = retry_frame(int(settings.retry.total_seconds() * 1000)) + control_frame(
        "stream.ready", {"filters": subject_filter.describe(), "live": True}
    )
    return EventStreamResponse(
        client,
        index,
        opening=opening,
        heartbeat_seconds=settings.heartbeat_interval.total_seconds(),
        send_timeout_seconds=settings.send_timeout.total_seconds(),
        shutdown_retry_ms=(
            int(settings.retry.total_seconds() * 1000),
            int(settings.shutdown_spread.total_seconds() * 1000),
        ),
    )
