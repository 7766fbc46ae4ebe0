"""The filters of a stream or history query, as the edge's query parameters."""

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from eh_contracts.times import rfc3339

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}

TimeLike = datetime | timedelta | str


def parse_duration(text: str) -> timedelta:
    """`"10m"`, `"90s"`, `"1.5h"`, `"2d"`, `"500ms"` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 10m, 2h or 1d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def to_time(value: TimeLike, *, now: datetime | None = None) -> datetime:
    """A point in time from a datetime, an RFC 3339 text, or a duration ago (`timedelta`, `"10m"`)."""
    now = now or datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, timedelta):
        return now - value
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _values(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, str) else list(raw)
    return tuple(v.strip() for item in items for v in item.split(",") if v.strip())


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What to read: types and resources (empty: all), a time range, how much history, a snapshot."""

    types: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int | None = None
    snapshot: bool = False

    @classmethod
    def of(
        cls,
        *,
        types: str | Iterable[str] | None = None,
        resources: str | Iterable[str] | None = None,
        since: TimeLike | None = None,
        start_time: TimeLike | None = None,
        end_time: TimeLike | None = None,
        limit: int | None = None,
        snapshot: bool = False,
    ) -> "EventQuery":
        """`since` is `start_time` said as a duration ago (`"10m"`) or a time; give one of them."""
        if since is not None and start_time is not None:
            raise ValueError("give since or start_time, not both")
        start = since if since is not None else start_time
        return cls(
            types=_values(types),
            resources=_values(resources),
            start_time=None if start is None else to_time(start),
            end_time=None if end_time is None else to_time(end_time),
            limit=limit,
            snapshot=snapshot,
        )

    def params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.types:
            params["type"] = ",".join(self.types)
        if self.resources:
            params["resource_id"] = ",".join(self.resources)
        if self.start_time is not None:
            params["start_time"] = rfc3339(self.start_time)
        if self.end_time is not None:
            params["end_time"] = rfc3339(self.end_time)
        if self.limit is not None:
            params["limit"] = str(self.limit)
        if self.snapshot:
            params["snapshot"] = "latest"
        return params

    def filters_only(self) -> "EventQuery":
        """The same filters and end, without the history part: what a resume asks for."""
        return replace(self, start_time=None, limit=None, snapshot=False)
