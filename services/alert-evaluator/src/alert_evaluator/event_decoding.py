"""Reading stored messages: only valid events of the type and resource their subject names.

Anything may be on the bus (a client with publish rights is enough), and the evaluator acts on
what it reads, so every message is checked against the event contract
(`eh_contracts.stored_events`), marked by a writer of ours or not. A message that is not an event
raises `Unevaluable` with the reason; the evaluation step skips it.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nats.aio.msg import Msg

from eh_contracts.stored_events import MSG_ID_HEADER, MessageProblem, NotAnEvent, check_stored_event
from eh_runtime.jetstream import delivery_position


class SkipReason(StrEnum):
    """Why a stored message was not evaluated (the `reason` label of the skipped-events metric)."""

    MALFORMED = MessageProblem.MALFORMED.value
    INVALID = MessageProblem.INVALID.value
    WRONG_SUBJECT = MessageProblem.WRONG_SUBJECT.value
    NO_ID = MessageProblem.NO_ID.value
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
        record = check_stored_event(subject, payload, msg_id)
    except NotAnEvent as error:
        raise Unevaluable(SkipReason(error.problem.value), error.detail) from None
    return DecodedEvent(record.event, record.resource_id, record.timestamp.timestamp(), record.data)


def message_id(msg: Msg) -> str | None:
    headers = msg.headers
    return None if headers is None else headers.get(MSG_ID_HEADER)


def delivery(msg: Msg) -> tuple[int, float]:
    """(stream sequence, time stored in seconds) of a delivered message."""
    seq, stored_ns, _pending = delivery_position(msg.reply)
    return seq, stored_ns / 1e9
