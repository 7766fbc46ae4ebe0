"""Which history reads may hold a JetStream consumer now, and how fast new ones may start.

A reconnection storm outside the window of recent events asks for thousands of consumers within
a second. Each one costs nats-server a consumer and this edge up to one replay's pending bytes
(what JetStream sent that the edge has not handed to the client yet), so both are bounded here:

- at most `slots` reads at once, a slot being one replay's pending bytes out of the total budget
  (`SSE_EDGE_REPLAY_PENDING_BYTES` of `SSE_EDGE_REPLAY_PENDING_TOTAL_BYTES`, and never more than
  `SSE_EDGE_MAX_CONCURRENT_REPLAYS`);
- at most `starts_per_second` reads start a second (consumer creations, counting probes included),
  so a storm becomes a steady ramp for nats-server instead of a burst of API requests.

Everything over either bound waits in arrival order (`eventhandler_edge_history_reads_waiting`),
for as long as its client stays connected: a storm is a queue, never a refusal.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from sse_edge.metrics import HISTORY_READS_WAITING


class ReplayAdmission:
    def __init__(self, slots: int, starts_per_second: float) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.slots = slots
        self._free = asyncio.Semaphore(slots)  # FIFO: waiters are admitted in arrival order
        self._interval = 1.0 / starts_per_second if starts_per_second > 0 else 0.0
        self._next_start = 0.0  # monotonic time from which the next read may start
        self.in_use = 0
        """Reads holding a slot now."""

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold a slot for the block, entered no sooner than the start rate allows."""
        waits = self._free.locked() or time.monotonic() < self._next_start
        if waits:
            HISTORY_READS_WAITING.inc()
        try:
            await self._free.acquire()
            try:
                await self._paced_start()
            except BaseException:
                self._free.release()
                raise
        finally:
            if waits:
                HISTORY_READS_WAITING.dec()
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._free.release()

    async def _paced_start(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)
