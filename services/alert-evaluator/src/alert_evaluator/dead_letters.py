"""Stored messages the evaluator could not evaluate: counted, logged once, kept for inspection.

One bad message must never stop evaluation: the step skips it and goes on. What it skipped stays
in the EVENTS stream (the sequence finds it: `nats stream get EVENTS <seq>`, or the edge's
history); the newest ones are listed on `GET /api/v1/status` under `dead_letters`, in a bounded
list, so an operator sees them without reading logs.
"""

import collections
from dataclasses import dataclass
from typing import Any, Final

import structlog

from alert_evaluator.evaluator_metrics import SKIPPED
from alert_evaluator.event_decoding import SkipReason

log = structlog.get_logger(__name__)

KEPT: Final = 100
_DETAIL_MAX: Final = 300


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    subject: str
    reason: SkipReason
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "subject": self.subject, "reason": self.reason.value, "detail": self.detail}


class DeadLetters:
    """The newest `KEPT` skipped messages of this process, newest last."""

    def __init__(self, kept: int = KEPT) -> None:
        self._letters: collections.deque[DeadLetter] = collections.deque(maxlen=kept)
        self._seen: set[int] = set()
        self.total = 0

    def add(self, seq: int, subject: str, reason: SkipReason, detail: str) -> None:
        """Count and log a skipped message, once per sequence (a redelivery is not news)."""
        if seq in self._seen:
            return
        if len(self._letters) == self._letters.maxlen:
            self._seen.discard(self._letters[0].seq)
        letter = DeadLetter(seq, subject[:_DETAIL_MAX], reason, detail[:_DETAIL_MAX])
        self._letters.append(letter)
        self._seen.add(seq)
        self.total += 1
        SKIPPED.labels(reason.value).inc()
        log.warning("stored message skipped, not evaluated", **letter.as_json())

    def as_json(self) -> list[dict[str, Any]]:
        return [letter.as_json() for letter in self._letters]
