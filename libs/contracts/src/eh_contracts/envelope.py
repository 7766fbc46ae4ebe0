"""The event envelope: `{id, event, timestamp, resource_id, data}`, one model per event type.

Parsing happens in pydantic's Rust core straight from the request bytes (`validate_json`), so a
batch of a thousand events costs one call, not a thousand. Serializing back uses `exclude_unset`:
what is stored is what the producer sent (times normalized to UTC), plus the `id` and `timestamp`
the collector filled in, never a flood of `null` for fields the producer did not mention.
"""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from eh_contracts.event_types import EventType
from eh_contracts.json_numbers import may_hold_unrepresentable, unrepresentable
from eh_contracts.payloads import (
    ContainerMetrics,
    ContainerStatus,
    NodeMetrics,
    NodeStatus,
    Payload,
    PipelineProgress,
    PipelineStatus,
    ResourceId,
    SystemAlert,
    SystemLog,
    UtcDatetime,
)
from eh_contracts.subjects import event_subject

EVENT_ID_MAX_LENGTH: Final = 128
# Printable text without control characters (the id travels as a NATS header value), and no
# leading or trailing whitespace, which header handling would silently strip.
EVENT_ID_PATTERN: Final = r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
_EVENT_ID_RE: Final = re.compile(EVENT_ID_PATTERN)


def validate_event_id(value: str) -> str:
    if not value or len(value) > EVENT_ID_MAX_LENGTH:
        raise ValueError(f"an event id has 1 to {EVENT_ID_MAX_LENGTH} characters, this one has {len(value)}")
    if not _EVENT_ID_RE.fullmatch(value):
        raise ValueError("an event id has no control characters and no leading or trailing whitespace")
    return value


EventId = Annotated[
    str,
    AfterValidator(validate_event_id),
    Field(json_schema_extra={"pattern": EVENT_ID_PATTERN, "minLength": 1, "maxLength": EVENT_ID_MAX_LENGTH}),
]


def new_event_id() -> str:
    """A fresh event id for producers that did not bring their own."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """What every event looks like; subclasses pin `event` and the type of `data`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: EventId = Field(
        default_factory=new_event_id,
        description=(
            "The producer's idempotency key: a retry with the same id is stored once. "
            "The collector generates one when absent."
        ),
    )
    event: str
    timestamp: UtcDatetime = Field(
        default_factory=utc_now,
        description="When it happened; the collector uses its own clock when absent.",
    )
    resource_id: ResourceId
    data: Payload

    @model_validator(mode="after")
    def _keep_filled_in_fields(self) -> Self:
        # `id` and `timestamp` come from default factories when absent; marking them as set makes
        # them survive `exclude_unset` when the event is serialized for storage.
        self.__pydantic_fields_set__.update(("id", "timestamp"))
        return self

    @property
    def subject(self) -> str:
        """The NATS subject this event is stored on."""
        return event_subject(self.event, self.resource_id)

    def to_json(self) -> bytes:
        """The stored form: compact JSON on one line, fields as sent plus the filled-in ones."""
        return self.__pydantic_serializer__.to_json(self, exclude_unset=True)


class NodeStatusEvent(EventEnvelope):
    event: Literal["node_status"]
    data: NodeStatus


class NodeMetricsEvent(EventEnvelope):
    event: Literal["node_metrics"]
    data: NodeMetrics


class PipelineStatusEvent(EventEnvelope):
    event: Literal["pipeline_status"]
    data: PipelineStatus


class PipelineProgressEvent(EventEnvelope):
    event: Literal["pipeline_progress"]
    data: PipelineProgress


class ContainerStatusEvent(EventEnvelope):
    event: Literal["container_status"]
    data: ContainerStatus


class ContainerMetricsEvent(EventEnvelope):
    event: Literal["container_metrics"]
    data: ContainerMetrics


class SystemAlertEvent(EventEnvelope):
    event: Literal["system_alert"]
    data: SystemAlert


class SystemLogEvent(EventEnvelope):
    event: Literal["system_log"]
    data: SystemLog


EVENT_MODELS: Final[dict[EventType, type[EventEnvelope]]] = {
    EventType.NODE_STATUS: NodeStatusEvent,
    EventType.NODE_METRICS: NodeMetricsEvent,
    EventType.PIPELINE_STATUS: PipelineStatusEvent,
    EventType.PIPELINE_PROGRESS: PipelineProgressEvent,
    EventType.CONTAINER_STATUS: ContainerStatusEvent,
    EventType.CONTAINER_METRICS: ContainerMetricsEvent,
    EventType.SYSTEM_ALERT: SystemAlertEvent,
    EventType.SYSTEM_LOG: SystemLogEvent,
}

AnyEvent = Annotated[
    NodeStatusEvent
    | NodeMetricsEvent
    | PipelineStatusEvent
    | PipelineProgressEvent
    | ContainerStatusEvent
    | ContainerMetricsEvent
    | SystemAlertEvent
    | SystemLogEvent,
    Field(discriminator="event"),
]
"""Any one event, told apart by its `event` field."""

_ONE_EVENT: Final = TypeAdapter[AnyEvent](AnyEvent)
_EVENT_LIST: Final = TypeAdapter[list[AnyEvent]](list[AnyEvent])
_EVENT_TAGS: Final = frozenset(t.value for t in EventType)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of the input.

    `loc` is the path into the request body: `("data", "cpu", "usage")` for a single event,
    `(3, "data", "cpu", "usage")` for the fourth event of a batch.
    """

    loc: tuple[str | int, ...]
    message: str
    type: str

    @property
    def field(self) -> str:
        """The path in the dotted form people write: `[3].data.cpu.usage`."""
        return field_path(self.loc) or "body"


def field_path(loc: Sequence[str | int]) -> str:
    """`(3, "data", "cpu")` → `[3].data.cpu`: a location as people write it."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class EventParseError(ValueError):
    """The body is not one valid event or a non-empty array of valid events.

    `malformed` is true when the body is not even JSON (a syntax error, not a content error).
    """

    def __init__(self, errors: list[FieldError], *, malformed: bool = False) -> None:
        self.errors = errors
        self.malformed = malformed
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


_TAG_LIST: Final = ", ".join(t.value for t in EventType)


def _field_errors(error: ValidationError, *, tag_at: int | None) -> list[FieldError]:
    """Pydantic's errors, with paths and messages as a producer would want to read them.

    A discriminated union puts the matched tag into the path (`"node_metrics", "data", ...`) at
    position `tag_at`; it is not part of the document, so it is dropped.
    """
    result = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        message = item["msg"].removeprefix("Value error, ")
        kind = item["type"]
        if kind == "union_tag_invalid":
            loc = (*loc, "event")
            given = item["input"].get("event") if isinstance(item["input"], dict) else None
            message = f"unknown event type {given!r}; expected one of: {_TAG_LIST}"
        elif kind == "union_tag_not_found":
            loc = (*loc, "event")
            message = f"Field required: the event type, one of: {_TAG_LIST}"
        elif tag_at is not None and len(loc) > tag_at and loc[tag_at] in _EVENT_TAGS:
            loc = loc[:tag_at] + loc[tag_at + 1 :]
        result.append(FieldError(loc=loc, message=message, type=kind))
    return result


ItemT = TypeVar("ItemT")


def reject_unrepresentable_numbers(body: bytes, items: Sequence[Any], *, indexed: bool) -> None:
    """Refuse validated events holding a number JSON readers cannot hold (see `json_numbers`).

    `items` are the events validated from `body` (dicts or models); `indexed`: error paths start
    with each item's index, as in an array.

    Raises:
        EventParseError: naming each such number by its path.
    """
    if not may_hold_unrepresentable(body):
        return
    errors = []
    for index, item in enumerate(items):
        value = item.model_dump(exclude_unset=True) if isinstance(item, BaseModel) else item
        prefix: tuple[int, ...] = (index,) if indexed else ()
        errors += [FieldError(loc, message, kind) for loc, message, kind in unrepresentable(value, prefix)]
    if errors:
        raise EventParseError(errors)


def validate_item(item: bytes, adapter: TypeAdapter[ItemT], index: int | None = None) -> ItemT:
    """Validate one event object with `adapter`; error paths start with `index` when given.

    Raises:
        EventParseError: naming every invalid field; `malformed` when the item is not JSON.
    """
    prefix: tuple[int, ...] = () if index is None else (index,)
    if item.lstrip()[:1] != b"{":
        try:
            TypeAdapter(Any).validate_json(item)
        except ValidationError as error:
            errors = [
                FieldError((*prefix, *e.loc), e.message, e.type) for e in _field_errors(error, tag_at=None)
            ]
            raise EventParseError(errors, malformed=True) from None
        raise EventParseError([FieldError(prefix, "expected an event object", "model_type")])
    try:
        result = adapter.validate_json(item)
    except ValidationError as error:
        errors = [FieldError((*prefix, *e.loc), e.message, e.type) for e in _field_errors(error, tag_at=0)]
        raise EventParseError(errors, malformed=any(e.type == "json_invalid" for e in errors)) from None
    try:
        reject_unrepresentable_numbers(item, [result], indexed=False)
    except EventParseError as error:
        errors = [FieldError((*prefix, *e.loc), e.message, e.type) for e in error.errors]
        raise EventParseError(errors) from None
    return result


def validate_body(body: bytes, one: TypeAdapter[ItemT], many: TypeAdapter[list[ItemT]]) -> list[ItemT]:
    """Validate a body holding one event object (with `one`) or a non-empty array (with `many`).

    Raises:
        EventParseError: naming every invalid field, by its path in the body.
    """
    start = body.lstrip()[:1]
    try:
        if start == b"[":
            items = many.validate_json(body)
            if not items:
                raise EventParseError([FieldError((), "the array holds no events", "too_short")])
            reject_unrepresentable_numbers(body, items, indexed=True)
            return items
        if start == b"{":
            items = [one.validate_json(body)]
            reject_unrepresentable_numbers(body, items, indexed=False)
            return items
    except ValidationError as error:
        errors = _field_errors(error, tag_at=1 if start == b"[" else 0)
        raise EventParseError(errors, malformed=any(e.type == "json_invalid" for e in errors)) from None
    try:
        TypeAdapter(Any).validate_json(body)
    except ValidationError as error:
        raise EventParseError(_field_errors(error, tag_at=None), malformed=True) from None
    raise EventParseError([FieldError((), "expected an event object or an array of events", "model_type")])


def parse_event(item: bytes, index: int | None = None) -> EventEnvelope:
    """Validate one event given as JSON; error paths start with `index` when it is given.

    For bodies that hold several events validated one at a time (NDJSON lines, or the items of an
    array that failed as a whole), so that each item's errors are their own.

    Raises:
        EventParseError: naming every invalid field; `malformed` when the item is not JSON.
    """
    return validate_item(item, _ONE_EVENT, index)


def parse_events(body: bytes) -> list[EventEnvelope]:
    """Validate a request body holding one event object or a JSON array of them.

    Missing `id` and `timestamp` are filled in. Times are normalized to UTC.

    Raises:
        EventParseError: naming every invalid field, by its path in the body.
    """
    events = validate_body(body, _ONE_EVENT, _EVENT_LIST)
    return list[EventEnvelope](events)
