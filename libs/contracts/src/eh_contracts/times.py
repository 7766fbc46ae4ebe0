"""Times as the contracts write them: RFC 3339 in UTC with a `Z`, e.g. `2025-01-15T10:30:00.123Z`."""

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """`moment` (timezone-aware) in UTC as RFC 3339 text ending in `Z`.

    Raises:
        ValueError: `moment` is naive: it names no instant.
    """
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no timezone: it names no instant")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rfc3339_from_epoch(seconds: float) -> str:
    """Seconds since the Unix epoch as RFC 3339 text in UTC."""
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


def utc_now_rfc3339() -> str:
    """The current time as RFC 3339 text in UTC."""
    return rfc3339(datetime.now(UTC))
