"""What a query keeps of the events its subjects select: a time window and a filter expression.

Subjects select by type and resource inside JetStream; the rest is decided per event, on the
stored bytes: the window reads only the timestamp, the expression needs the parsed envelope.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from eh_contracts.expressions import CompiledExpression
from sse_edge.time_window import TimeWindow


def parse_envelope(stored: bytes) -> dict[str, Any]:
    """The stored envelope as JSON values; an empty dict (which no filter matches) when the bytes
    are not a JSON object: stored messages are untrusted input."""
    try:
        envelope = json.loads(stored)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        return {}
    return envelope if type(envelope) is dict else {}


@dataclass(frozen=True, slots=True)
class EventSelection:
    window: TimeWindow = field(default_factory=TimeWindow)
    expression: CompiledExpression | None = None

    @property
    def bounded(self) -> bool:
        """Some events of the subjects are left out (otherwise `contains` is always True)."""
        return self.window.bounded or self.expression is not None

    def contains(self, stored: bytes) -> bool:
        if self.window.bounded and not self.window.contains(stored):
            return False
        return self.expression is None or self.expression.evaluate(parse_envelope(stored)) is True
