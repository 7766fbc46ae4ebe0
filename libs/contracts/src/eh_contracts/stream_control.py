"""The control events of the SSE API: their names and the JSON they carry.

They tell a dashboard what state its stream is in. None has an `id:`, so none moves the
client's Last-Event-ID. The edge builds them; these models document them (AsyncAPI) and the
tests check every control event the edge sends against them.
"""

from typing import Final

from pydantic import BaseModel, ConfigDict, Field


class ControlEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamFilters(ControlEvent):
    type: list[str] = Field(description="Event types selected; empty: all.")
    resource_id: list[str] = Field(description="Resource ids selected; empty: all.")


class StreamReady(ControlEvent):
    """First on every stream: the query as the edge understood it."""

    filters: StreamFilters
    start_time: str | None = None
    end_time: str | None = None
    limit: int | None = None
    resume_after: int | None = Field(default=None, description="The Last-Event-ID resumed after.")
    snapshot: bool = Field(
        default=False, description="The latest event of every matching type and resource comes first."
    )
    last_seq: int = Field(description="The stream's last sequence when this stream opened.")
    filter: str | None = Field(
        default=None, description="The filter expression (`filter=`) events must satisfy, if any."
    )
    max_rate: float | None = Field(
        default=None, description="Most writes a second (`max_rate=`, or the edge's cap); null: none."
    )
    max_bandwidth: int | None = Field(
        default=None, description="Most bytes a second (`max_bandwidth=`, or the edge's cap); null: none."
    )
    subscription_id: str | None = Field(
        default=None,
        description="Names this stream for `PATCH /api/v1/subscriptions/{id}` (change its filters live); "
        "unguessable, known only to this stream's client.",
    )


class StreamGap(ControlEvent):
    """Events after Last-Event-ID expired before they could be replayed."""

    first_missing: int = Field(description="First stream sequence that can no longer be replayed.")
    last_missing: int = Field(description="Last stream sequence that can no longer be replayed.")
    reason: str


class StreamCaughtUp(ControlEvent):
    """History (or the snapshot) is done: every event after this one is live."""

    last_seq: int


class StreamFiltersChanged(ControlEvent):
    """The stream's filters were changed (`PATCH /api/v1/subscriptions/{id}`): every event before
    this one matched the old filters, every event after it matches the new ones."""

    subscription_id: str
    from_seq: int = Field(
        description="The first stream sequence the new filters apply to; events before it were "
        "filtered by the old ones and are not sent again."
    )
    filters: StreamFilters
    filter: str | None = Field(default=None, description="The filter expression now in force, if any.")


class StreamEnd(ControlEvent):
    """A bounded query is complete; the server closes the stream."""

    reason: str
    last_seq: int | None = Field(description="Sequence of the last event sent, if any.")


class StreamOverflow(ControlEvent):
    """The client fell too far behind; the server closes: resume with Last-Event-ID."""

    reason: str


class StreamShutdown(ControlEvent):
    """The edge is stopping; reconnect after `retry_ms` (also sent as `retry:`)."""

    reason: str
    retry_ms: int


class StreamTokenExpired(ControlEvent):
    """The token the stream was opened with has expired; the server closes. Get a fresh token and
    reconnect with Last-Event-ID: nothing is missed."""

    reason: str
    expired_at: str = Field(description="When the token lapsed (RFC 3339, UTC; `exp` plus the leeway).")


CONTROL_EVENTS: Final[dict[str, type[ControlEvent]]] = {
    "stream.ready": StreamReady,
    "stream.gap": StreamGap,
    "stream.caught_up": StreamCaughtUp,
    "stream.filters_changed": StreamFiltersChanged,
    "stream.end": StreamEnd,
    "stream.overflow": StreamOverflow,
    "stream.shutdown": StreamShutdown,
    "stream.token_expired": StreamTokenExpired,
}
