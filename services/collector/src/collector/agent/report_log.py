"""How a round that failed is logged: why, and once.

The agent reports every few seconds; a collector that refuses it, or cannot be reached, would
otherwise repeat the same warning forever. A line is written when the outcome changes: the first
failure, a different failure, and the first success after failures.
"""

from typing import Any

import httpx
import structlog

from eh_client import EventHandlerError

log = structlog.get_logger(__name__)

REFUSED_STATUSES = frozenset({401, 403})


def describe_failure(
    error: httpx.HTTPError | EventHandlerError, *, has_token: bool
) -> tuple[str, dict[str, Any]]:
    """The log message and fields for one failed round.

    A collector that answered 401/403 refused the agent's token (the collector's own words say
    why); one that answered nothing is unreachable; any other answer is an error of its own.
    """
    status = error.status if isinstance(error, EventHandlerError) else None
    text = str(error) if isinstance(error, EventHandlerError) else f"{type(error).__name__}: {error}"
    if status in REFUSED_STATUSES:
        fields: dict[str, Any] = {"status": status, "error": text}
        if status == 401 and not has_token:
            fields["hint"] = "the collector wants a token: set AGENT_TOKEN_FILE or AGENT_TOKEN"
        return "collector refused the agent's reports", fields
    if status is None:
        return "collector unreachable; next try at the next interval", {"error": text}
    return "collector answered with an error; next try at the next interval", {
        "status": status,
        "error": text,
    }


class ReportLog:
    """Logs each round's outcome when it differs from the previous round's."""

    def __init__(self) -> None:
        self._failure: tuple[str, dict[str, Any]] | None = None
        self._repeats = 0
        self._failed_rounds = 0

    def failed(self, message: str, fields: dict[str, Any]) -> None:
        self._failed_rounds += 1
        if self._failure == (message, fields):
            self._repeats += 1
            return
        extra = {"previous_failure_repeated": self._repeats} if self._failure and self._repeats else {}
        log.warning(message, **fields, **extra)
        self._failure = (message, fields)
        self._repeats = 0

    def succeeded(self) -> None:
        if self._failure is not None:
            log.info("collector accepts the agent's reports again", failed_rounds=self._failed_rounds)
        self._failure = None
        self._repeats = 0
        self._failed_rounds = 0
