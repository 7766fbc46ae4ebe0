"""`GET /api/v1/events`: stored and live events as Server-Sent Events, filtered and resumable."""

import asyncio
import secrets
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request

from eh_contracts.envelope import EVENT_MODELS
from eh_contracts.event_types import EventType
from eh_contracts.stream_control import CONTROL_EVENTS
from eh_runtime.auth.claims import Principal
from eh_runtime.auth.requests import SubscriberDep
from sse_edge.history.jetstream_history import JetStreamBounds, JetStreamHistory
from sse_edge.history.replay import Replay
from sse_edge.http.connection_limits import ConnectionLimits
from sse_edge.http.dependencies import EdgeDep
from sse_edge.http.event_query import EventQuery, parse_event_query, parse_last_event_id
from sse_edge.http.query_filters import event_filters
from sse_edge.http.sse_frames import control_frame, retry_frame
from sse_edge.http.sse_response import SseResponse
from sse_edge.http.stream_encoding import negotiate
from sse_edge.http.stream_parameters import STREAM_PARAMETERS_OPENAPI, StreamParameters, stream_parameters
from sse_edge.http.token_expiry import token_expiry
from sse_edge.http.write_pace import WritePace, effective
from sse_edge.live.recent_events import RecentEvents
from sse_edge.live.subscriber import Subscriber
from sse_edge.settings import EdgeSettings

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1", tags=["events"])


def sse_event_shapes() -> dict[str, Any]:
    """`event:` name → what its `id:` and `data:` hold, by reference to the component schemas."""
    shapes: dict[str, Any] = {
        t.value: {
            "id": "the event's JetStream stream sequence",
            "data": {"$ref": f"#/components/schemas/{EVENT_MODELS[t].__name__}"},
        }
        for t in EventType
    }
    for name, model in CONTROL_EVENTS.items():
        shapes[name] = {"id": None, "data": {"$ref": f"#/components/schemas/{model.__name__}"}}
    return shapes


SSE_RESPONSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "An event stream. Each event: `id:` its JetStream stream sequence, `event:` its type, "
            "`data:` the stored envelope JSON. Control events (no `id:`): `stream.ready` (first: the "
            "effective query and the stream's last sequence), `stream.gap` (events after Last-Event-ID "
            "expired: `first_missing`..`last_missing`), `stream.caught_up` (history done, live from "
            "here), `stream.end` (a bounded query is complete; the server closes), `stream.overflow`, "
            "`stream.shutdown` and `stream.token_expired` (last, before the server closes: refresh the "
            "token and resume with Last-Event-ID). Comment lines are heartbeats."
        ),
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "SSE messages; `x-sse-events` gives the `data:` of each `event:` name.",
                },
                "x-sse-events": sse_event_shapes(),
            }
        },
    },
    400: {"description": "Last-Event-ID is not a sequence number, or lies beyond the stream's end"},
    401: {"description": "No token, or a bad or expired one"},
    403: {
        "description": "The filters ask for more than the token allows (a type, a resource, or all "
        "resources under a pattern grant); `detail` names the parameter. Refused before the stream opens"
    },
    422: {"description": "A query parameter is invalid; `detail` names it"},
    429: {
        "description": "This client address, or this token's holder, holds the most streams it may; "
        "retry after Retry-After"
    },
    503: {
        "description": "The event store is unreachable, or this edge holds its maximum of streams; "
        "retry after Retry-After"
    },
}


@router.get(
    "/events",
    summary="Subscribe to events (Server-Sent Events), with history and resume",
    response_class=SseResponse,
    status_code=200,
    responses=SSE_RESPONSE_DOC,
    openapi_extra=STREAM_PARAMETERS_OPENAPI,
)
async def subscribe_events(
    request: Request,
    subscriber: SubscriberDep,
    edge: EdgeDep,
    parameters: Annotated[StreamParameters, Depends(stream_parameters)],
) -> SseResponse:
    # The parameters are one dependency (`stream_parameters`), documented one by one.
    settings, index, limits = edge.settings, edge.fanout, edge.connection_limits
    subject_filter, expression = event_filters(
        parameters.type, parameters.resource_id, parameters.filter, settings, subscriber.subscribe
    )
    query = parse_event_query(
        subject_filter,
        start_time=parameters.start_time,
        end_time=parameters.end_time,
        limit=parameters.limit,
        resume_after=parse_last_event_id(parameters.last_event_id_header, parameters.last_event_id),
        snapshot=parameters.snapshot,
        expression=expression,
    )
    peer = request.client.host if request.client else "unknown"
    limits.admit(peer, subscriber.key)
    try:
        client = Subscriber(
            query.filter,
            int(settings.client_buffer_bytes),
            peer,
            query.window,
            query.expression,
            subscription_id=secrets.token_urlsafe(18),
            owner=subscriber.key,
        )
        # Registered before the stream's end is read: every later event reaches the live queue.
        index.add(client)
        try:
            bounds = _live_bounds(edge.recent_events, query)
            first_seq_known = bounds is None
            if bounds is None:
                bounds = await _stream_bounds(edge.history, query)
        except BaseException:
            index.remove(client)
            raise
    except BaseException:
        limits.release(peer, subscriber.key)
        raise
    if edge.service.stopping.is_set():
        client.close("shutdown")
    pace = WritePace(
        effective(parameters.max_rate, settings.max_rate),
        _whole(effective(parameters.max_bandwidth, float(settings.max_bandwidth))),
    )
    expiry = token_expiry(client, subscriber)
    opening = retry_frame(int(settings.retry.total_seconds() * 1000)) + control_frame(
        "stream.ready",
        {
            **query.describe(),
            "last_seq": bounds.last_seq,
            "subscription_id": client.subscription_id,
            "max_rate": pace.max_rate,
            "max_bandwidth": pace.max_bandwidth,
        },
    )
    return SseResponse(
        client,
        index,
        opening=opening,
        replay=Replay(
            edge.history,
            query,
            bounds,
            settings.time_skew,
            edge.recent_events,
            settings.replay_retry_for,
            first_seq_known=first_seq_known,
        ),
        encoding=_stream_encoding(request, settings),
        shutdown_retry_ms=(
            int(settings.retry.total_seconds() * 1000),
            int(settings.shutdown_spread.total_seconds() * 1000),
        ),
        on_close=lambda: _closed(limits, peer, subscriber, expiry),
        pace=pace,
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def _live_bounds(recent: RecentEvents, query: EventQuery) -> JetStreamBounds | None:
    """For a resume: where its live part begins, as this edge's live feed knows it, without a
    NATS request before the stream opens (a reconnection storm asks thousands of times a second,
    and an answer that times out would be a 503). The client is registered in the fan-out
    already, so every event after the feed's last sequence reaches its live queue; the replay
    reads the stream's first sequence itself if it needs JetStream (`Replay`, retried).

    None (ask JetStream first) without a resume, before the feed's first event, and for an id
    beyond the feed's last sequence: a feed behind, or an id from elsewhere (the 400).
    """
    after = query.resume_after
    if after is None or recent.last_seq == 0 or after > recent.last_seq:
        return None
    return JetStreamBounds(0, recent.last_seq)


def _closed(
    limits: ConnectionLimits, peer: str, subscriber: Principal, expiry: asyncio.TimerHandle | None
) -> None:
    limits.release(peer, subscriber.key)
    if expiry is not None:
        expiry.cancel()


async def _stream_bounds(history: JetStreamHistory, query: EventQuery) -> JetStreamBounds:
    """The EVENTS stream's first and last sequence; 503 or 400 before the stream opens."""
    bounds = await history.bounds()  # NATS unavailable: the service's 503 handler answers
    if query.resume_after is not None and query.resume_after > bounds.last_seq:
        raise HTTPException(
            400,
            f"Last-Event-ID {query.resume_after} is beyond the stream's last event ({bounds.last_seq}); "
            "it does not come from this stream",
        )
    return bounds


def _stream_encoding(request: Request, settings: EdgeSettings) -> str | None:
    return negotiate(request.headers.get("accept-encoding", ""), settings.encodings)
