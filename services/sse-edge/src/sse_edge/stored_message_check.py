"""Which stored messages the edge sends to clients: events, never what `JSON.parse` would reject.

Anything can be stored on `events.>` by a client with publish rights; what came through our
writers carries the `Eh-Envelope` mark (see `eh_contracts.stored_events`) and is sent as it is,
without parsing. An unmarked message (the exception) is checked in full; one that is not a valid
event (not JSON, empty, not UTF-8, not on its event's subject, a subject of two tokens) is
skipped, counted by reason, and logged with its sequence at most once a second.
"""

import time
from typing import Final

import structlog
from nats.aio.msg import Msg

from eh_contracts.stored_events import ENVELOPE_HEADER, ENVELOPE_VERSION, problem_of
from sse_edge.metrics import MESSAGES_SKIPPED

log = structlog.get_logger(__name__)

_LOG_EVERY_SECONDS: Final = 1.0


Burst = list[tuple[str, str, bytes]]  # as `history.ordered_read.Burst`: (seq, subject, data)


class StoredMessageCheck:
    def __init__(self, path: str) -> None:
        self._path = path  # "live" or "history": which reader skipped it
        self._logged_at = 0.0
        self._unlogged = 0

    def sendable(self, msg: Msg, seq: int | str) -> bool:
        """True when `msg` is an event a client may be sent; otherwise it is counted and skipped."""
        problem = problem_of(msg.subject, msg.data, msg.headers)
        if problem is None:
            return True
        MESSAGES_SKIPPED.labels(problem.value, self._path).inc()
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_SECONDS:
            log.warning(
                "stored message is not an event; not sent to clients",
                seq=int(seq),
                subject=msg.subject[:200],
                reason=problem.value,
                reader=self._path,
                skipped_since_last_log=self._unlogged,
            )
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1
        return False

    def sendable_burst(self, msgs: list[Msg], burst: Burst) -> Burst:
        """The items of `burst` (made from `msgs`, in order) that clients may be sent."""
        if all(
            (headers := m.headers) is not None
            and headers.get(ENVELOPE_HEADER) == ENVELOPE_VERSION
            and m.subject.count(".") >= 2
            for m in msgs
        ):
            return burst  # the common case: every message marked by a writer of ours
        return [item for item, m in zip(burst, msgs, strict=True) if self.sendable(m, item[0])]
