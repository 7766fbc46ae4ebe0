"""`GET /api/v1/events/history`: the same filters as the stream, as paged JSON."""

import json
from collections.abc import Sequence
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from eh_runtime.auth.requests import SubscriberDep
from eh_runtime.service import error_detail
from sse_edge.event_selection import EventSelection
from sse_edge.history.jetstream_history import JetStreamHistory, StoredEvent
from sse_edge.http.dependencies import HistoryDep, SettingsDep
from sse_edge.http.event_query import parse_event_query
from sse_edge.http.filter_expression import FILTER_DESCRIPTION
from sse_edge.http.history_cursor import HistoryCursor, Order, query_fingerprint
from sse_edge.http.query_filters import ResourceFilter, TypeFilter, event_filters

MAX_PAGE: Final = 1000

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get(
    "/events/history",
    summary="Stored events as JSON pages",
    description=(
        "The same filters as `GET /api/v1/events`. Answers "
        '`{"events": [{"seq": <stream sequence>, ...envelope}], "next": "<cursor>" | null}`; pass '
        "`next` back as `cursor` (with the same filters and order) for the following page. Pages are "
        "positioned by stream sequence, so events arriving meanwhile never shift or repeat a page. "
        "With `snapshot=latest`: the latest event of every matching (type, resource), and "
        '`"last_seq"`, the sequence the snapshot holds at.'
    ),
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}},
        400: {"description": "The cursor is malformed or belongs to another query"},
        401: {"description": "No token, or a bad or expired one"},
        403: {"description": "The filters ask for more than the token allows; `detail` names the parameter"},
        422: {"description": "A query parameter is invalid; `detail` names it"},
        503: {"description": "The event store is unreachable"},
    },
)
async def event_history(
    subscriber: SubscriberDep,
    settings: SettingsDep,
    history: HistoryDep,
    type: TypeFilter = [],  # noqa: B006 - FastAPI copies defaults per request
    resource_id: ResourceFilter = [],  # noqa: B006
    start_time: Annotated[
        str | None, Query(description="RFC 3339; events whose own timestamp is at or after it.")
    ] = None,
    end_time: Annotated[
        str | None, Query(description="RFC 3339; events whose own timestamp is at or before it.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Events per page.")] = 100,
    order: Annotated[Order, Query(description="asc: oldest first; desc: newest first.")] = "asc",
    cursor: Annotated[str | None, Query(description="`next` of the previous page.")] = None,
    filter: Annotated[str | None, Query(description=FILTER_DESCRIPTION)] = None,
    snapshot: Annotated[
        str | None,
        Query(
            description="`latest`: the latest stored event of every matching (type, resource), in stream "
            "order, paged; the answer's `last_seq` is the sequence the snapshot holds at: stream live "
            "from there with `last_event_id`. Not with start_time, end_time or order=desc."
        ),
    ] = None,
) -> Response:
    subject_filter, expression = event_filters(type, resource_id, filter, settings, subscriber.subscribe)
    query = parse_event_query(
        subject_filter,
        start_time=start_time,
        end_time=end_time,
        limit=None,
        resume_after=None,
        snapshot=snapshot,
        expression=expression,
    )
    canonical = query.expression.canonical if query.expression else None
    fingerprint = query_fingerprint(query.filter.describe(), start_time, end_time, query.snapshot, canonical)
    position = HistoryCursor.decode(cursor, order=order, query=fingerprint) if cursor else None
    subjects = query.filter.subjects
    if query.snapshot:
        if order != "asc":
            raise HTTPException(422, detail=[_order_error()])
        return await _snapshot_page(history, subjects, limit, position, fingerprint, query.selection)
    bounds = await history.bounds()
    low, high = await history.seq_range(query.window, settings.time_skew, bounds)
    if order == "asc":
        low = max(low, position.seq) if position else low
        page = await history.earliest(subjects, query.selection, low, high, limit)
        more = len(page) == limit and page[-1].seq < high
        after = HistoryCursor("asc", page[-1].seq + 1, fingerprint) if more else None
    else:
        high = min(high, position.seq) if position else high
        page = list(reversed(await history.latest(subjects, query.selection, low, high, limit)))
        more = len(page) == limit and page[-1].seq > low
        after = HistoryCursor("desc", page[-1].seq - 1, fingerprint) if more else None
    return Response(_page_json(page, after), media_type="application/json")


async def _snapshot_page(
    history: JetStreamHistory,
    subjects: Sequence[str],
    limit: int,
    position: HistoryCursor | None,
    fingerprint: str,
    selection: EventSelection,
) -> Response:
    """A page of the snapshot taken at the first page's stream end; later pages keep that point,
    so the pages together are one snapshot, whatever arrives meanwhile."""
    snapshot_at = position.snapshot_at if position else (await history.bounds()).last_seq
    after_seq = position.seq if position else 0
    page = await history.latest_per_subject(
        subjects, snapshot_at, limit, after_seq=after_seq, selection=selection
    )
    more = len(page) == limit and page[-1].seq < snapshot_at
    after = HistoryCursor("asc", page[-1].seq, fingerprint, snapshot_at) if more else None
    return Response(_page_json(page, after, snapshot_at), media_type="application/json")


def _order_error() -> dict[str, object]:
    return error_detail(["order"], "a snapshot comes in stream order: order=asc", "value_error") | {
        "in": "query"
    }


def _page_json(page: list[StoredEvent], after: HistoryCursor | None, last_seq: int | None = None) -> bytes:
    # The stored envelopes are spliced in as they are, with "seq" first, not parsed and re-dumped:
    # the history read hands over only events (validated JSON objects, see stored_message_check).
    events = b",".join(
        b'{"seq":%d,%s' % (event.seq, data[1:])
        for event in page
        if (data := event.data.lstrip())[:1] == b"{" and data[1:].lstrip()[:1] == b'"'
    )
    following = json.dumps(after.encode() if after else None).encode()
    if last_seq is None:
        return b'{"events":[%s],"next":%s}' % (events, following)
    return b'{"events":[%s],"next":%s,"last_seq":%d}' % (events, following, last_seq)
