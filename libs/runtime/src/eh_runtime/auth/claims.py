"""What a token allows: the `eh` claim, parsed into grants over event types and resource ids.

A token carries one `eh` claim (besides the registered `sub`, `iss`, `aud`, `exp`):

    {"subscribe": {"types": ["node_status"], "resources": ["node-*"]},
     "publish":   {"types": ["pipeline_status"], "resources": ["ci-*"]},
     "admin": true}

A section that is absent grants nothing; inside a section, an absent list, or `"*"` in it, means
all. A resource pattern is a resource id in which `*` stands for any run of characters. Grants are
cross products (every listed type for every matching resource), like the edge's filters, so a
filter lies inside a grant exactly when each of its dimensions does.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from eh_contracts.event_types import EventType
from eh_contracts.subjects import SubjectFilter

CLAIM: Final = "eh"
ANY: Final = "*"
_PATTERN_RE: Final = re.compile(r"^[A-Za-z0-9_:*-]{1,128}$")


class InvalidClaim(ValueError):
    """The `eh` claim is malformed; the token is refused as a whole."""


class OutsideGrant(Exception):
    """A request asks for more than the token grants: a 403 naming the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Grant:
    """Event types (None: all) and resource-id patterns (`("*",)`: all) one may read or publish."""

    types: frozenset[EventType] | None = None
    resources: tuple[str, ...] = (ANY,)

    @classmethod
    def parse(cls, section: str, value: Any) -> "Grant":
        """The grant of one claim section (`subscribe` or `publish`).

        Raises:
            InvalidClaim: naming the section and the bad value.
        """
        if not isinstance(value, Mapping):
            raise InvalidClaim(f"{CLAIM}.{section} must be an object with 'types' and 'resources'")
        unknown = set(value) - {"types", "resources"}
        if unknown:
            raise InvalidClaim(f"{CLAIM}.{section} has unknown keys: {', '.join(sorted(unknown))}")
        types = _string_list(f"{section}.types", value.get("types", [ANY]))
        resources = _string_list(f"{section}.resources", value.get("resources", [ANY]))
        parsed_types: frozenset[EventType] | None = None
        if ANY not in types:
            try:
                parsed_types = frozenset(EventType(t) for t in types)
            except ValueError as error:
                raise InvalidClaim(f"{CLAIM}.{section}.types: {error}") from None
        for pattern in resources:
            if not _PATTERN_RE.fullmatch(pattern):
                raise InvalidClaim(
                    f"{CLAIM}.{section}.resources: {pattern!r} is not a resource id pattern "
                    "(letters, digits, '_', '-', ':' and '*')"
                )
        return cls(parsed_types, (ANY,) if ANY in resources else tuple(sorted(set(resources))))

    @property
    def all_resources(self) -> bool:
        return self.resources == (ANY,)

    @property
    def permits_all(self) -> bool:
        """Every type about every resource (an unrestricted token, or HTTP auth off)."""
        return self.types is None and self.all_resources

    @cached_property
    def _resource_re(self) -> re.Pattern[str]:
        alternatives = ("[^.]*".join(re.escape(p) for p in pattern.split(ANY)) for pattern in self.resources)
        return re.compile("|".join(f"(?:{a})" for a in alternatives))

    def permits_type(self, event_type: EventType | str) -> bool:
        return self.types is None or event_type in self.types

    def permits_resource(self, resource_id: str) -> bool:
        return self.all_resources or self._resource_re.fullmatch(resource_id) is not None

    def permits(self, event_type: EventType | str, resource_id: str) -> bool:
        """Whether an event of this type about this resource lies inside the grant."""
        return self.permits_type(event_type) and self.permits_resource(resource_id)

    def narrow(self, requested: SubjectFilter) -> SubjectFilter:
        """The filter to serve for `requested`: never wider than this grant.

        What the request names must lie inside the grant (else `OutsideGrant`: 403, before any
        stream opens); what it leaves open ("all types", "all resources") becomes the grant's own
        list. A grant by pattern cannot be listed, so "all resources" under it is refused too: a
        filter is a set of exact subjects, and a subject cannot say "node-*".

        Raises:
            OutsideGrant: naming `type` or `resource_id` and what the token allows.
        """
        for event_type in sorted(requested.types):
            if not self.permits_type(event_type):
                raise OutsideGrant(
                    "type", f"your token does not allow event type {event_type.value!r}; {self}"
                )
        for resource_id in sorted(requested.resource_ids):
            if not self.permits_resource(resource_id):
                raise OutsideGrant(
                    "resource_id", f"your token does not allow resource {resource_id!r}; {self}"
                )
        types = requested.types or self.types or frozenset()
        resource_ids = requested.resource_ids
        if not resource_ids and not self.all_resources:
            if any(ANY in pattern for pattern in self.resources):
                raise OutsideGrant(
                    "resource_id",
                    f"your token allows resources matching {', '.join(self.resources)} only; "
                    "name the resource ids to read (resource_id=...)",
                )
            resource_ids = frozenset(self.resources)
        return SubjectFilter(frozenset(types), frozenset(resource_ids))

    def __str__(self) -> str:
        types = ", ".join(sorted(t.value for t in self.types)) if self.types is not None else "all"
        return f"it allows types: {types}; resources: {', '.join(self.resources)}"

    def describe(self) -> dict[str, list[str]]:
        types = sorted(t.value for t in self.types) if self.types is not None else [ANY]
        return {"types": types, "resources": list(self.resources)}


EVERYTHING: Final = Grant()


@dataclass(frozen=True)
class Principal:
    """Who is asking, and what their token allows.

    `key` identifies the holder for per-principal limits (the token's issuer and subject); it is
    None for the unauthenticated development principal of `AUTH_MODE=none`.
    """

    subject: str
    subscribe: Grant | None = None
    publish: Grant | None = None
    admin: bool = False
    expires_at: float | None = None
    key: str | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> "Principal":
        """Raises: InvalidClaim for a malformed `eh` claim or a missing `sub`."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidClaim("the token has no 'sub' (subject) claim")
        scope = claims.get(CLAIM, {})
        if not isinstance(scope, Mapping):
            raise InvalidClaim(f"the {CLAIM!r} claim must be an object")
        unknown = set(scope) - {"subscribe", "publish", "admin"}
        if unknown:
            raise InvalidClaim(f"{CLAIM} has unknown keys: {', '.join(sorted(unknown))}")
        admin = scope.get("admin", False)
        if not isinstance(admin, bool):
            raise InvalidClaim(f"{CLAIM}.admin must be true or false")
        expires = claims.get("exp")
        return cls(
            subject=subject,
            subscribe=Grant.parse("subscribe", scope["subscribe"]) if "subscribe" in scope else None,
            publish=Grant.parse("publish", scope["publish"]) if "publish" in scope else None,
            admin=admin,
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            key=f"{claims.get('iss', '')}|{subject}",
        )

    def describe(self) -> dict[str, Any]:
        return {
            "sub": self.subject,
            "subscribe": self.subscribe.describe() if self.subscribe else None,
            "publish": self.publish.describe() if self.publish else None,
            "admin": self.admin,
        }


DEVELOPMENT_PRINCIPAL: Final = Principal(
    subject="anonymous (AUTH_MODE=none)", subscribe=EVERYTHING, publish=EVERYTHING, admin=True
)
"""Everyone, when HTTP auth is off: every right, no per-principal limit."""


def _string_list(where: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable) or not all(isinstance(item, str) for item in value):
        raise InvalidClaim(f"{CLAIM}.{where} must be a list of strings")
    items = list(value)
    if not items:
        raise InvalidClaim(f"{CLAIM}.{where} is empty; leave the section out to grant nothing")
    return items
