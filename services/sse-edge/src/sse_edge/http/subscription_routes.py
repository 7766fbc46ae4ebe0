"""`PATCH /api/v1/subscriptions/{id}`: change an open stream's filters without reconnecting.

The stream's `stream.ready` names its subscription id. A change takes effect at a stream
sequence, announced in the stream by `stream.filters_changed` with `from_seq`: every event before
that control event matched the old filters, every event after it matches the new ones, none is
sent twice and none is missed. The id is unguessable and known only to the stream's client; a
stream opened by an authenticated principal can be changed only by the same principal. An id this
edge does not hold (a closed stream, a stream on another replica) is a 404: the client reopens
its stream with the new filters (and its Last-Event-ID) instead.
"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from eh_runtime.auth.requests import SubscriberDep
from sse_edge.http.dependencies import FanoutDep, SettingsDep
from sse_edge.http.filter_expression import FILTER_DESCRIPTION
from sse_edge.http.query_filters import event_filters
from sse_edge.http.sse_frames import control_frame

router = APIRouter(prefix="/api/v1", tags=["events"])
T = TypeVar("T")


class SubscriptionChange(BaseModel):
    """The filters to replace; a field left out keeps its value, `null` or `[]` clears it."""

    model_config = ConfigDict(extra="forbid")

    type: list[str] | None = Field(default=None, description="Event types; empty or null: all.")
    resource_id: list[str] | None = Field(default=None, description="Resource ids; empty or null: all.")
    filter: str | None = Field(default=None, description=FILTER_DESCRIPTION + " Empty or null: none.")


class SubscriptionChanged(BaseModel):
    subscription_id: str
    from_seq: int = Field(description="The first stream sequence the new filters apply to.")
    filters: dict[str, list[str]]
    filter: str | None


@router.patch(
    "/subscriptions/{subscription_id}",
    summary="Change the filters of an open event stream",
    response_model=SubscriptionChanged,
    responses={
        401: {"description": "No token, or a bad or expired one"},
        403: {"description": "The new filters ask for more than the token allows; `detail` names the field"},
        404: {"description": "No open stream with this id on this edge; reopen the stream instead"},
        409: {"description": "The stream is still replaying history; retry after stream.caught_up"},
        422: {"description": "A field is invalid; `detail` names it"},
    },
)
async def change_subscription(
    subscriber: SubscriberDep,
    index: FanoutDep,
    settings: SettingsDep,
    subscription_id: Annotated[str, Path(max_length=64, description="From the stream's stream.ready.")],
    change: Annotated[SubscriptionChange, Body()],
) -> SubscriptionChanged:
    client = index.subscription(subscription_id)
    # A stream opened by one token holder is not found by another (the same answer as an id that
    # does not exist); the holder's refreshed token (same issuer and subject) is the same holder.
    if client is None or client.close_reason is not None or client.owner != subscriber.key:
        raise HTTPException(404, "no open stream with this subscription id on this edge")
    if client.holding:
        raise HTTPException(409, "the stream is still replaying its history; retry after stream.caught_up")
    given = change.model_fields_set
    types = change.type or [] if "type" in given else [t.value for t in client.filter.types]
    resources = change.resource_id or [] if "resource_id" in given else list(client.filter.resource_ids)
    current = client.expression.text if client.expression else None
    # A kept expression is checked again against the new types: a field must exist in one of them.
    # Narrowed to the caller's claim like every filter the edge builds: a change cannot widen a stream.
    subject_filter, expression = _in_body(
        lambda: event_filters(
            types,
            resources,
            change.filter if "filter" in given else current,
            settings,
            subscriber.subscribe,
        )
    )
    described = subject_filter.describe()
    filter_text = expression.text if expression else None

    def marker(from_seq: int) -> bytes:
        return control_frame(
            "stream.filters_changed",
            {
                "subscription_id": subscription_id,
                "from_seq": from_seq,
                "filters": described,
                "filter": filter_text,
            },
        )

    from_seq = index.change_filters(client, subject_filter, expression, marker)
    return SubscriptionChanged(
        subscription_id=subscription_id, from_seq=from_seq, filters=described, filter=filter_text
    )


def _in_body(parse: Callable[[], T]) -> T:
    """Run a query-parameter parser on body fields: its 422s and 403s naming a field then say
    the field is in the body."""
    try:
        return parse()
    except HTTPException as error:
        detail: Any = error.detail
        if isinstance(detail, list):
            items = [{**item, "in": "body"} for item in detail]
            raise HTTPException(error.status_code, detail=items, headers=error.headers) from None
        raise
