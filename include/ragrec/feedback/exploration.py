"""The exploration slice of ``/search``: a share of answers (``RAGREC_EXPLORE``, at most
``MAX_RATE``) swaps one shown result with a lower one - position ``i`` drawn from the first
``k - 1``, ``j`` from below it - and says so in the answer (``explore``) and in the events
index (an ``explore`` event), so the log shows the same result at two positions and the
click model can tell position from relevance (``propensity``).

Measured on synthetic logs (800 queries, 5 sessions each, 5 % explored): swapping any shown
result with any lower one recovered the examination curve better (mean |log error| 0.26)
than swapping the top result only (0.82), whose deep positions are rarely reached.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_RATE = 0.2  # a fifth of answers at most: the rest are served as ranked


class ExploreRateError(ValueError):
    pass


def checked_rate(rate: float) -> float:
    if not 0 <= rate <= MAX_RATE:
        raise ExploreRateError(f"RAGREC_EXPLORE must be between 0 and {MAX_RATE} (the share "
                               f"of /search answers that swap two results), not {rate}")
    return rate


@dataclass(frozen=True)
class Swap:
    upper: int  # 1-based positions
    lower: int

    def to_dict(self) -> dict:
        return {"swapped": [self.upper, self.lower]}


class Explorer:
    def __init__(self, rate: float, rng: random.Random | None = None):
        self.rate = checked_rate(rate)
        self.rng = rng or random.Random()

    def draw(self, shown: int) -> Swap | None:
        """The swap for an answer of ``shown`` results, or None (most answers)."""
        if shown < 2 or not self.rate or self.rng.random() >= self.rate:
            return None
        upper = self.rng.randint(1, shown - 1)
        return Swap(upper, self.rng.randint(upper + 1, shown))


def apply(items: list, swap: Swap | None) -> list:
    """``items`` with the swap made (a new list)."""
    items = list(items)
    if swap is not None:
        i, j = swap.upper - 1, swap.lower - 1
        items[i], items[j] = items[j], items[i]
    return items
