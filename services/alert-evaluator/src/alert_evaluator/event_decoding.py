"""Reading stored messages: only valid events of the type and resource their subject names.

Anything may be on the bus (a client with publish rights is enough), so every message is checked
against the event contract (`eh_contracts`) before the rules see it: JSON within the parser's
depth limit, a valid envelope of the type the subject names, for the resource it names, stored
under its own id (`Nats-Msg-Id`, as every writer of ours stores events). A message that is not
one raises `Unevaluable` with the reason; the evaluation step skips it.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from nats.aio.msg import Msg

from eh_contracts.envelope import EventParseError
from eh_contracts.records import parse_record
from eh_contracts.subjects import SUBJECT_ROOT
from eh_runtime.jetstream import delivery_position

_PREFIX: Final = f"{SUBJECT_ROOT}."
_MSG_ID_HEADER: Final = "Nats-Msg-Id"


class SkipReason(StrEnum):
    """Why a stored message was not evaluated (the `reason` label of the skipped-events metric)."""

    MALFORMED = "malformed"  # not JSON (or nested deeper than the parser allows)
    INVALID = "invalid"  # JSON, but not a valid event envelope
    WRONG_SUBJECT = "wrong_subject"  # a valid event on a subject that names another type or resource
    NO_ID = "no_id"  # not stored under its own id: it did not come through a writer of ours
    FUTURE = "future"  # stamped further ahead of its storage time than the allowed clock skew
    EVALUATION_ERROR = "evaluation_error"  # a rule's condition raised on its data


class Unevaluable(Exception):
    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    event_type: str
    resource_id: str
    at: float  # event time, seconds since the epoch
    data: dict[str, Any]


def decode_event(subject: str, payload: bytes, msg_id: str | None) -> DecodedEvent:
    """The event a stored message holds.

    Raises:
        Unevaluable: it holds no valid event of the type and resource its subject names.
    """
    try:
        record = parse_record(payload)
    except EventParseError as error:
        reason = SkipReason.MALFORMED if error.malformed else SkipReason.INVALID
        raise Unevaluable(reason, _first_problem(error)) from None
    except Exception as error:  # the parser's own limits (depth, size): the message is not usable
        raise Unevaluable(SkipReason.MALFORMED, f"{type(error).__name__}: {error}") from None
    event_type, resource_id = record.event, record.resource_id
    if subject != f"{_PREFIX}{event_type}.{resource_id}":
        raise Unevaluable(
            SkipReason.WRONG_SUBJECT, f"a {event_type} event of {resource_id!r} stored on {subject!r}"
        )
    if msg_id != record.id:
        raise Unevaluable(SkipReason.NO_ID, f"stored with Nats-Msg-Id {msg_id!r}, not its id {record.id!r}")
    return DecodedEvent(event_type, resource_id, record.timestamp.timestamp(), record.data)


def message_id(msg: Msg) -> str | None:
    headers = msg.headers
    return None if headers is None else headers.get(_MSG_ID_HEADER)


def delivery(msg: Msg) -> tuple[int, float]:
    """(stream sequence, time stored in seconds) of a delivered message."""
    seq, stored_ns, _pending = delivery_position(msg.reply)
    return seq, stored_ns / 1e9


def _first_problem(error: EventParseError) -> str:
    if not error.errors:
        return str(error)
    first = error.errors[0]
    more = f" (and {len(error.errors) - 1} more)" if len(error.errors) > 1 else ""
    return f"{first.field or 'body'}: {first.message}{more}"
