"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter").

Delay of attempt n (0-based) is uniform in [0, min(cap, base * 2**n)]: spreads a thundering
herd of reconnecting clients over the whole window instead of synchronising them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Computes reconnect delays; `reset()` after a stable connection."""

    base: float = 0.5
    """Seconds: the window of the first retry."""
    cap: float = 30.0
    """Seconds: the largest window."""
    max_attempts: int | None = None
    """Give up after this many consecutive failed attempts (None: never)."""
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def window(self, attempt: int) -> float:
        """The upper bound of the delay before retry number `attempt` (0-based)."""
        # min() before the power would overflow for huge attempt counts.
        if attempt >= 64:
            return self.cap
        return float(min(self.cap, self.base * (2**attempt)))

    def next_delay(self) -> float | None:
        """The delay before the next attempt, or None once `max_attempts` is used up."""
        if self.max_attempts is not None and self.attempts >= self.max_attempts:
            return None
        delay = self.rng.uniform(0.0, self.window(self.attempts))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Starts again from the smallest window."""
        self.attempts = 0
