"""Where events live in NATS: `events.<type>.<resource_id>`, and filters over those subjects.

User input only ever becomes a literal subject token here. Wildcards (`*`, `>`) are produced by
this module alone, from the *absence* of a filter, so no query parameter can widen a subscription.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from eh_contracts.event_types import EventType

SUBJECT_ROOT: Final = "events"
ALL_EVENTS_SUBJECT: Final = f"{SUBJECT_ROOT}.>"

RESOURCE_ID_MAX_LENGTH: Final = 128
RESOURCE_ID_PATTERN: Final = r"^[A-Za-z0-9_:-]{1,128}$"
_RESOURCE_ID_RE: Final = re.compile(RESOURCE_ID_PATTERN)
RESOURCE_ID_SCHEMA: Final[dict[str, Any]] = {
    "pattern": RESOURCE_ID_PATTERN,
    "minLength": 1,
    "maxLength": RESOURCE_ID_MAX_LENGTH,
}
"""The JSON Schema constraints of a resource id, for documents that describe one."""


class InvalidResourceId(ValueError):
    """A resource id that cannot be a single NATS subject token."""


def validate_resource_id(resource_id: str) -> str:
    """Return `resource_id` unchanged if it is a safe subject token, else raise.

    Allowed: ASCII letters, digits, `_`, `-` and `:`, 1 to 128 characters. This excludes the
    subject separator `.`, the wildcards `*` and `>`, and whitespace.

    Raises:
        InvalidResourceId: with a message that says what is wrong.
    """
    if _RESOURCE_ID_RE.fullmatch(resource_id):
        return resource_id
    if not resource_id:
        raise InvalidResourceId("resource id is empty")
    if len(resource_id) > RESOURCE_ID_MAX_LENGTH:
        raise InvalidResourceId(
            f"resource id is {len(resource_id)} characters long, at most {RESOURCE_ID_MAX_LENGTH} allowed"
        )
    bad = sorted({c for c in resource_id if not re.fullmatch(r"[A-Za-z0-9_:-]", c)})
    shown = ", ".join(repr(c) for c in bad)
    raise InvalidResourceId(
        f"resource id {resource_id!r} contains {shown}; allowed are letters, digits, '_', '-' and ':'"
    )


def event_subject(event_type: EventType | str, resource_id: str) -> str:
    """The subject an event of this type and resource is stored on.

    Raises:
        ValueError: for an unknown event type or an invalid resource id.
    """
    return f"{SUBJECT_ROOT}.{EventType(event_type).value}.{validate_resource_id(resource_id)}"


def parse_event_subject(subject: str) -> tuple[EventType, str]:
    """Split `events.<type>.<resource_id>` into its type and resource id.

    Raises:
        ValueError: when the subject is not an event subject.
    """
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != SUBJECT_ROOT:
        raise ValueError(f"{subject!r} is not an event subject ({SUBJECT_ROOT}.<type>.<resource_id>)")
    return EventType(parts[1]), validate_resource_id(parts[2])


@dataclass(frozen=True, slots=True)
class SubjectFilter:
    """A selection of events by type and resource id; empty means "all".

    The selection is the cross product: an event matches when its type is one of `types` (or
    `types` is empty) and its resource id is one of `resource_ids` (or that is empty).
    """

    types: frozenset[EventType] = frozenset()
    resource_ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, types: Iterable[EventType | str] = (), resource_ids: Iterable[str] = ()) -> "SubjectFilter":
        """Build a filter from untrusted values, validating each one.

        Raises:
            ValueError: for an unknown type or an invalid resource id.
        """
        return cls(
            types=frozenset(EventType(t) for t in types),
            resource_ids=frozenset(validate_resource_id(r) for r in resource_ids),
        )

    @property
    def subjects(self) -> list[str]:
        """NATS filter subjects covering exactly this selection, in a stable order."""
        type_tokens = sorted(t.value for t in self.types) or ["*"]
        id_tokens = sorted(self.resource_ids) or ["*"]
        if type_tokens == ["*"] and id_tokens == ["*"]:
            return [ALL_EVENTS_SUBJECT]
        return [f"{SUBJECT_ROOT}.{t}.{r}" for t in type_tokens for r in id_tokens]

    def matches(self, event_type: EventType | str, resource_id: str) -> bool:
        """Whether an event of this type and resource id is selected."""
        return (not self.types or event_type in self.types) and (
            not self.resource_ids or resource_id in self.resource_ids
        )

    def describe(self) -> dict[str, list[str]]:
        """The filter as JSON-ready lists (empty list: no restriction)."""
        return {"type": sorted(t.value for t in self.types), "resource_id": sorted(self.resource_ids)}
