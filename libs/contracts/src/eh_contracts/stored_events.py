"""What a reader of the EVENTS stream may take as an event, and the header that spares the check.

Any client with publish rights on `events.>` can store anything there. Our writers (the collector,
the alert-evaluator) store only events they validated, on the subject their type and resource
name, under their own id (`Nats-Msg-Id`), and mark each with `Eh-Envelope: 1`. A reader on a hot
path (the SSE edge) trusts the mark and checks only unmarked messages, the exception; a reader
that acts on events (the alert-evaluator) may check every message.
"""

from enum import StrEnum
from typing import Final

from eh_contracts.envelope import EventParseError
from eh_contracts.records import EventRecord, parse_record
from eh_contracts.subjects import SUBJECT_ROOT

ENVELOPE_HEADER: Final = "Eh-Envelope"
ENVELOPE_VERSION: Final = "1"
ENVELOPE_HEADER_LINE: Final = f"{ENVELOPE_HEADER}: {ENVELOPE_VERSION}\r\n".encode()
"""The header as a raw `Name: value` line, for writers that build frames themselves."""
MSG_ID_HEADER: Final = "Nats-Msg-Id"

_PREFIX: Final = f"{SUBJECT_ROOT}."


class MessageProblem(StrEnum):
    """Why a stored message is not an event (a metric label; stable values)."""

    MALFORMED = "malformed"  # not JSON, not UTF-8, empty, or nested deeper than the parser allows
    INVALID = "invalid"  # JSON, but not a valid event envelope
    WRONG_SUBJECT = "wrong_subject"  # not events.<type>.<resource_id> of the event it holds
    NO_ID = "no_id"  # not stored under its own id: it did not come through a writer of ours


class NotAnEvent(Exception):
    def __init__(self, problem: MessageProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def check_stored_event(subject: str, payload: bytes, msg_id: str | None) -> EventRecord:
    """The event a stored message holds, validated as the collector validates its input.

    Raises:
        NotAnEvent: it holds no valid event of the type and resource its subject names, stored
            under the event's id.
    """
    try:
        record = parse_record(payload)
    except EventParseError as error:
        problem = MessageProblem.MALFORMED if error.malformed else MessageProblem.INVALID
        raise NotAnEvent(problem, _first_problem(error)) from None
    except Exception as error:  # the parser's own limits: the message is not usable
        raise NotAnEvent(MessageProblem.MALFORMED, f"{type(error).__name__}: {error}") from None
    event_type, resource_id = record.event, record.resource_id
    if subject != f"{_PREFIX}{event_type}.{resource_id}":
        raise NotAnEvent(
            MessageProblem.WRONG_SUBJECT, f"a {event_type} event of {resource_id!r} stored on {subject!r}"
        )
    if msg_id != record.id:
        raise NotAnEvent(
            MessageProblem.NO_ID, f"stored with Nats-Msg-Id {msg_id!r}, not its id {record.id!r}"
        )
    return record


def problem_of(subject: str, payload: bytes, headers: dict[str, str] | None) -> MessageProblem | None:
    """None when the stored message is an event a client may be sent, else why not.

    A marked message is trusted once its subject has the three tokens of an event subject; an
    unmarked one is checked in full.
    """
    if headers is not None and headers.get(ENVELOPE_HEADER) == ENVELOPE_VERSION:
        if subject.count(".") < 2 or not subject.startswith(_PREFIX):
            return MessageProblem.WRONG_SUBJECT
        return None
    try:
        check_stored_event(subject, payload, None if headers is None else headers.get(MSG_ID_HEADER))
    except NotAnEvent as not_an_event:
        return not_an_event.problem
    return None


def _first_problem(error: EventParseError) -> str:
    if not error.errors:
        return str(error)
    first = error.errors[0]
    more = f" (and {len(error.errors) - 1} more)" if len(error.errors) > 1 else ""
    return f"{first.field}: {first.message}{more}"
