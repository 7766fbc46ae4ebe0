"""What a stream yields: stored events, typed by the contracts, and control events."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from eh_contracts.envelope import AnyEvent
from eh_contracts.payloads import Payload

_ENVELOPE: Final = TypeAdapter[AnyEvent](AnyEvent)

RECONNECTING: Final = "client.reconnecting"
"""Synthesized by the client (not sent by the server): the connection dropped, a new one follows."""
INVALID_EVENT: Final = "client.invalid_event"
"""Synthesized by the client: a stored event that is not a valid envelope; skipped, not hidden."""


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event: its stream sequence (the SSE id, what Last-Event-ID resumes after) and the
    envelope as the contracts' model of its type (`NodeMetricsEvent`, `SystemAlertEvent`, ...)."""

    seq: int
    envelope: AnyEvent

    @property
    def type(self) -> str:
        return self.envelope.event

    @property
    def resource_id(self) -> str:
        return self.envelope.resource_id

    @property
    def timestamp(self) -> datetime:
        return self.envelope.timestamp

    @property
    def data(self) -> Payload:
        return self.envelope.data

    def to_json(self) -> dict[str, Any]:
        """`{"seq": …, **envelope}`, as the history endpoint answers it."""
        return {"seq": self.seq, **self.envelope.model_dump(mode="json", exclude_unset=True)}


@dataclass(frozen=True, slots=True)
class Control:
    """A control event: `stream.ready`, `stream.caught_up`, `stream.gap`, `stream.overflow`,
    `stream.end`, `stream.shutdown`, `stream.filters_changed`, … as the server sends them, and
    `client.reconnecting` / `client.invalid_event`, which this client adds."""

    name: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        """The name without its prefix: `gap`, `caught_up`, `reconnecting`, …"""
        return self.name.partition(".")[2]


StreamItem = Event | Control


def parse_event(seq: int, body: str | bytes) -> Event:
    """Raises `pydantic.ValidationError` when `body` is not a valid envelope."""
    return Event(seq, _ENVELOPE.validate_json(body))


def parse_event_or_control(seq: int, body: str | bytes) -> StreamItem:
    try:
        return parse_event(seq, body)
    except ValidationError as error:
        return Control(INVALID_EVENT, {"seq": seq, "error": str(error)})
