"""One pass per turn of the event loop that hands new live frames to the streams waiting for them.

A group's append used to wake the writer task of every stream parked on it: per client and per
event a future resolved, a task step scheduled and run, and a new future to wait on; under a
reconnection storm (10,000 streams, ~10 events a second each, one event per write) that was as
much CPU as the socket write itself. Instead the group hands its parked streams here, and once per
turn of the loop (scheduled by the first such hand-over, run after everything the live feed
delivered meanwhile was appended, so that several events still leave in one write) each of them
is told its frames arrived: a stream whose writer can write synchronously writes them then and
there (`Subscriber.frames_arrived`), the others wake their task as before.
"""

import asyncio
import time
from collections.abc import Iterable
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class WaitingReader(Protocol):
    def frames_arrived(self, now: float) -> None:
        """Frames were appended to the log it waits on; `now` is `time.monotonic()` of the pass."""


class FanoutFlush:
    __slots__ = ("_due",)

    def __init__(self) -> None:
        # The parked sets the groups gave up in this turn, as they were (no copy per event).
        self._due: list[Iterable[WaitingReader]] = []

    def add(self, readers: Iterable[WaitingReader]) -> None:
        """Tell `readers` about their frames in the loop's next turn (one pass for all groups)."""
        if not self._due:
            asyncio.get_running_loop().call_soon(self._run)
        self._due.append(readers)

    def _run(self) -> None:
        due, self._due = self._due, []
        now = time.monotonic()
        for readers in due:
            for reader in readers:
                try:
                    reader.frames_arrived(now)
                except Exception:  # a bug for one stream must not leave the others of this turn waiting
                    log.exception("fan-out flush failed for a stream")
