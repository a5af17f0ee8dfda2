"""What a training run may spend, and what it used: a step budget fitted to ``--max-minutes``
(from the step rate measured as it trains) and ``--max-steps``, and the order the examples
are taken in so that any prefix of them keeps as many queries represented as it can.

A run whose data would take longer than the budget trains on a sample: the first
``steps x batch`` examples of an order that takes each query's first pair (queries shuffled),
then each query's second pair, and so on; every example keeps its hard negatives. The plan
is revised after every step (the first steps are the slowest; a machine shared with other
jobs slows down), and the learning-rate schedule follows the revised total, so warm-up and
decay span the steps the run will really take.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

DEFAULT_MAX_MINUTES = 10.0  # per training job: both jobs, set-up included, inside 20 min


def by_query_rounds(items: Sequence[T], query_of: Callable[[T], str],
                    rng: random.Random) -> list[T]:
    """``items`` reordered: one of each query's items (queries in a shuffled order), then a
    second of each, and so on; a query's own items are shuffled too."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(query_of(item), []).append(item)
    queries = sorted(groups)
    rng.shuffle(queries)
    for query in queries:
        rng.shuffle(groups[query])
    ordered: list[T] = []
    for round_number in range(max((len(g) for g in groups.values()), default=0)):
        ordered += [groups[q][round_number] for q in queries if round_number < len(groups[q])]
    return ordered


@dataclass
class StepBudget:
    """``data_steps``: the steps the whole data takes (all epochs). ``total`` is the current
    plan: the least of that, ``max_steps`` and the steps that fit before ``deadline``
    (``time.monotonic()`` seconds; ``reserve`` seconds before it are left for saving and
    exporting the model)."""

    data_steps: int
    max_steps: int | None = None
    max_seconds: float | None = None
    reserve: float = 0.0
    started: float = field(default_factory=lambda: time.monotonic())
    steps: int = 0
    seconds_per_step: float | None = None
    stopped_by: str = ""

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max steps must be at least 1, not {self.max_steps}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max minutes must be above 0, not {self.max_seconds / 60:g}")
        self.total = min(self.data_steps, self.max_steps or self.data_steps)

    @property
    def deadline(self) -> float | None:
        return None if self.max_seconds is None else \
            self.started + self.max_seconds - self.reserve

    def step_done(self) -> bool:
        """Records a finished step, revises the plan; True while another step fits."""
        self.steps += 1
        now = time.monotonic()
        self.seconds_per_step = (now - self.started) / self.steps
        if self.deadline is not None:
            fit = self.steps + int(max(0.0, self.deadline - now) / self.seconds_per_step)
            self.total = max(self.steps, min(self.data_steps, self.max_steps or self.data_steps,
                                             fit))
        if self.steps < self.total:
            return True
        if self.steps >= self.data_steps:
            self.stopped_by = "data"
        elif self.max_steps is not None and self.steps >= self.max_steps:
            self.stopped_by = "max_steps"
        else:
            self.stopped_by = "max_minutes"
        return False

    def lr_factor(self, warmup_fraction: float) -> Callable[[int], float]:
        """Linear warm-up then linear decay to 0 over the current plan."""
        def factor(step: int) -> float:
            warmup = max(1, int(self.total * warmup_fraction))
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (self.total - step) / max(1, self.total - warmup))
        return factor

    def report(self) -> dict:
        return {"steps": self.steps, "steps_for_all_data": self.data_steps,
                "stopped_by": self.stopped_by or "data",
                "max_steps": self.max_steps,
                "seconds_for_steps": None if self.max_seconds is None
                else round(self.max_seconds - self.reserve, 1),
                "seconds_per_step": None if self.seconds_per_step is None
                else round(self.seconds_per_step, 2)}
