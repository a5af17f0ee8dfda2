"""An interaction log as a weighted user x item matrix.

Each (user, item, time) event adds ``0.5 ** (age / half_life)`` to its cell, age measured
back from ``now`` (default: the newest event), so what people consume together lately counts
more than what they did a year ago; repeats of one pair add up. Users and items keep the
order they first appear in, and their ids map to rows and columns both ways.

A user's *profile* - the history a recommendation is scored from - weighs the distinct
items by recency within the user's own sequence: the newest counts 1, the one before it
``0.5 ** (1 / half_life)``, and so on (``half_life`` in items; None: all alike). What one
did last predicts what one does next far better than when, in calendar time, it was."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from scipy import sparse

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Event:
    user: str
    item: str
    ts: float  # unix seconds


def event_of(row: dict) -> Event:
    """An event from a stored ``<alias>-events`` document (``ts`` an ISO time)."""
    stamp = row["ts"]
    seconds = stamp if isinstance(stamp, int | float) else datetime.fromisoformat(
        str(stamp).replace("Z", "+00:00")).timestamp()
    return Event(str(row["user_id"]), str(row["doc_id"]), float(seconds))


@dataclass
class Interactions:
    users: list[str]
    items: list[str]
    matrix: sparse.csr_matrix  # users x items, decayed weights
    user_index: dict[str, int] = field(repr=False)
    item_index: dict[str, int] = field(repr=False)
    sequences: dict[str, list[str]] = field(default_factory=dict, repr=False)  # oldest first

    @classmethod
    def build(cls, events: Iterable[Event], half_life_days: float | None = None,
              now: float | None = None, items: Iterable[str] = ()) -> Interactions:
        """``items``: catalogue ids to give a column even without events (cold items)."""
        events = list(events)
        user_index: dict[str, int] = {}
        item_index: dict[str, int] = {item: n for n, item in enumerate(dict.fromkeys(items))}
        rows, cols = [], []
        for event in events:
            rows.append(user_index.setdefault(event.user, len(user_index)))
            cols.append(item_index.setdefault(event.item, len(item_index)))
        stamps = np.asarray([e.ts for e in events], dtype=np.float64)
        if half_life_days and len(events):
            reference = stamps.max() if now is None else now
            ages = np.maximum(reference - stamps, 0.0) / SECONDS_PER_DAY
            weights = half_life_weight(ages, half_life_days)
        else:
            weights = np.ones(len(events))
        matrix = sparse.csr_matrix((weights, (rows, cols)),
                                   shape=(len(user_index), len(item_index)), dtype=np.float64)
        matrix.sum_duplicates()
        sequences: dict[str, list[str]] = {}
        for event in sorted(events, key=lambda e: e.ts):
            sequences.setdefault(event.user, []).append(event.item)
        return cls(list(user_index), list(item_index), matrix, user_index, item_index,
                   sequences)

    def binary(self) -> sparse.csr_matrix:
        """1 where a user consumed an item."""
        ones = self.matrix.copy()
        ones.data[:] = 1.0
        return ones

    def counts(self) -> np.ndarray:
        """Users per item (its popularity)."""
        return np.asarray(self.binary().sum(axis=0)).ravel()

    def history(self, user: str) -> dict[str, float]:
        row = self.user_index.get(user)
        if row is None:
            return {}
        start, end = self.matrix.indptr[row], self.matrix.indptr[row + 1]
        return {self.items[c]: float(w) for c, w in zip(self.matrix.indices[start:end],
                                                         self.matrix.data[start:end],
                                                         strict=True)}

    def profile(self, user: str, half_life: float | None = None) -> dict[str, float]:
        """The user's distinct items, newest first, weighted by recency (see above)."""
        return recency_profile(self.sequences.get(user, []), half_life)


def recency_profile(items_oldest_first: list[str], half_life: float | None) -> dict[str, float]:
    newest_first = list(dict.fromkeys(reversed(items_oldest_first)))
    return {item: 1.0 if not half_life else half_life_weight(rank, half_life)
            for rank, item in enumerate(newest_first)}


def half_life_weight(age, half_life: float):
    """``0.5 ** (age / half_life)``: 1 now, halving every ``half_life`` (days or places);
    a negative age (a clock ahead) counts as now. Scalars or arrays."""
    return 0.5 ** (np.maximum(age, 0.0) / half_life)
