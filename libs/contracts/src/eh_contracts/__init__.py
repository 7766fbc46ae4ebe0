"""Event Handler's public contracts: what an event is and where it lives.

Everything a producer, a consumer or a service needs to agree on is here: the envelope and the
payload of each event type (:mod:`.envelope`, :mod:`.payloads`), and the NATS subjects they are
stored on (:mod:`.subjects`). JSON Schema and AsyncAPI documents are generated from these models
(:mod:`.schemas`).
"""

from eh_contracts.envelope import (
    EVENT_MODELS,
    AnyEvent,
    EventEnvelope,
    EventParseError,
    FieldError,
    parse_events,
)
from eh_contracts.event_types import EventType
from eh_contracts.subjects import (
    InvalidResourceId,
    SubjectFilter,
    event_subject,
    parse_event_subject,
    validate_resource_id,
)

__all__ = [
    "EVENT_MODELS",
    "AnyEvent",
    "EventEnvelope",
    "EventParseError",
    "EventType",
    "FieldError",
    "InvalidResourceId",
    "SubjectFilter",
    "event_subject",
    "parse_event_subject",
    "parse_events",
    "validate_resource_id",
]
