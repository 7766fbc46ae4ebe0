"""Finding where "the last N matching events" begin, with a handful of questions to the server.

The server answers one question cheaply: how many matching events are stored at or after
sequence s (`count_from(s)`, a consumer's `num_pending`). That count falls as s grows, so the
start of the last N is found by search, not by reading events: interpolation guesses assuming
matches are spread evenly, with bisection as the fallback when they are not. The search stops
as soon as the window holds between N and N + slack matches; the reader skips the surplus,
which is cheaper than more round trips.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

CountFrom = Callable[[int], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class WindowStart:
    """Read from `seq`, and skip the first `skip` matching events found there."""

    seq: int
    skip: int
    probes: int


async def locate_last_n(
    count_from: CountFrom, low: int, high: int, n: int, *, beyond: int = 0
) -> WindowStart:
    """Start of the last `n` matching events among sequences `low..high`.

    Args:
        count_from: matching events at or after a sequence, up to the end of the stream.
        low, high: the sequence range searched (inclusive).
        n: how many of the latest matching events in that range are wanted.
        beyond: matching events after `high` (already known), subtracted from every count.
    """
    probes = 0

    async def in_range(seq: int) -> int:
        nonlocal probes
        probes += 1
        return await count_from(seq) - beyond

    total = await in_range(low)
    if total <= n:
        return WindowStart(low, 0, probes)
    slack = max(8, n // 4)
    # Invariant: in_range(lo) > n + slack is too many (or lo == low), in_range(hi) < n is too few.
    lo, lo_count = low, total
    hi, hi_count = high + 1, 0
    while hi - lo > 1:
        if probes % 3 == 2:
            # Every third probe bisects, bounding the worst case when matches cluster.
            guess = lo + (hi - lo) // 2
        else:
            fraction = (lo_count - n - slack / 2) / max(1, lo_count - hi_count)
            guess = lo + int((hi - lo) * fraction)
        guess = min(max(guess, lo + 1), hi - 1)
        count = await in_range(guess)
        if n <= count <= n + slack:
            return WindowStart(guess, count - n, probes)
        if count > n + slack:
            lo, lo_count = guess, count
        else:
            hi, hi_count = guess, count
    # Not reached in practice: one sequence holds one event, so counts cannot jump over the band.
    return WindowStart(lo, lo_count - n, probes)
