"""Reconnection delays: exponential with full jitter, so that many clients do not come back at once."""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """`next()` gives the delay before the next attempt; `reset()` after a connection that worked."""

    initial: float = 0.25
    maximum: float = 30.0
    attempts: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def next(self, at_least: float = 0.0) -> float:
        ceiling = min(self.maximum, self.initial * 2**self.attempts)
        self.attempts += 1
        # Full jitter (a uniform draw below the ceiling) spreads a herd best for the same mean wait.
        return max(at_least, self._random.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempts = 0
