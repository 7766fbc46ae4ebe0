"""Per-stream caps on how fast events are written: updates per second and bytes per second.

A dashboard on a slow link asks for, say, 5 updates a second (`max_rate=5`): its writer then
writes at most 5 times a second, and each write carries the newest metrics sample of each
resource plus every other event that arrived since the last one (`Subscriber.conflate_live`).
A byte cap (`max_bandwidth`) spaces writes by their size. What arrives meanwhile waits in the
stream's buffer, under the flow control every stream has: metrics conflated first, then
`stream.overflow` when the other events alone no longer fit.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WritePace:
    max_rate: float | None = None
    """Writes per second at most; None: as fast as events come."""
    max_bandwidth: int | None = None
    """Bytes per second at most; None: no cap."""

    @property
    def paced(self) -> bool:
        return self.max_rate is not None or self.max_bandwidth is not None

    def pause_after(self, written: int, took: float) -> float:
        """How long to wait after a write of `written` bytes that took `took` seconds."""
        pause = 0.0
        if self.max_rate is not None:
            pause = 1.0 / self.max_rate
        if self.max_bandwidth is not None:
            pause = max(pause, written / self.max_bandwidth)
        return max(0.0, pause - took)


def effective(requested: float | None, default: float) -> float | None:
    """A request may lower the edge's cap (`default`, 0: none), never raise it."""
    if default <= 0:
        return requested
    if requested is None:
        return default
    return min(requested, default)
