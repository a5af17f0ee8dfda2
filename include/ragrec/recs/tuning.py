"""The recommendation blend tuned on each deployment's own log, every ``rec_train`` run.

Each user's latest ``holdout`` positive events are held out (time-based validation); the
item neighbours are fitted on the rest, exactly as ``rec_train`` fits them on everything;
then, for a sample of the held-out users, the served candidate pool and its source scores
are gathered once through ``recs.blend.gather`` (the content neighbours from the real chunk
index, the collaborative scores and popularity from the fitted part), and every weight
combination of the grid ranks those pools as ``/recommend/user`` would
(``recs.blend.fuse``: min-max scaled sources, ties by document id). NDCG@k against the
held-out documents picks the weights. The shipped weights and the live ones are scored on
the same split, and the new weights replace the live ones only when they score at least as
well. The test split of a benchmark never reaches this code: it only sees the log.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.recs.blend import SOURCES, gather
from ragrec.recs.interactions import Event, recency_profile
from ragrec.recs.neighbours import ItemNeighbours, score_history
from ragrec.recs.setup import SHIPPED, RecSettings
from ragrec.retrieval.fusion import min_max

log = logging.getLogger(__name__)
POPULAR_COUNTS = 200  # as served: the 200 most clicked documents are the popular source


@dataclass(frozen=True)
class TuneSettings:
    holdout: int = 1  # each user's latest positive events held out for validation
    min_history: int = 2  # events a validation user keeps to be scored from
    min_users: int = 20  # fewer validation users: not tuned, the live setup stays
    max_users: int = 500  # a seeded sample beyond this
    k: int = 10
    seed: int = 7
    collaborative: tuple[float, ...] = (0.0, 1.0)
    content: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6)
    popular: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)

    def grid(self) -> list[dict[str, float]]:
        return [dict(zip(SOURCES, combo, strict=True)) for combo in
                itertools.product(self.collaborative, self.content, self.popular)
                if any(combo)]

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_TUNING = TuneSettings()


@dataclass
class _Pool:
    """One validation user's candidates: ids sorted (ties break by id, as served), each
    source min-max scaled over the pool, and which of them were held out."""

    scaled: np.ndarray  # candidates x sources
    relevant: np.ndarray  # bool per candidate
    held: int


@dataclass
class Validation:
    pools: list[_Pool] = field(default_factory=list)

    @property
    def users(self) -> int:
        return len(self.pools)

    def ndcg(self, weights: dict[str, float], k: int) -> float:
        vector = np.asarray([weights.get(name, 0.0) for name in SOURCES])
        total = 0.0
        for pool in self.pools:
            order = np.argsort(-(pool.scaled @ vector), kind="stable")[:k]
            gains = pool.relevant[order]
            dcg = float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())
            ideal = sum(1.0 / math.log2(r + 2) for r in range(min(pool.held, k)))
            total += dcg / ideal
        return total / len(self.pools) if self.pools else 0.0


def split_latest(events: list[Event], holdout: int,
                 min_history: int) -> tuple[list[Event], dict[str, set[str]]]:
    """(the events kept for fitting, user -> the documents of their ``holdout`` latest
    events); only users with ``min_history`` events before those are held out, and a held
    document the user had consumed before does not count (consumed items are never shown)."""
    by_user: dict[str, list[Event]] = {}
    for event in sorted(events, key=lambda e: (e.ts, e.item)):
        by_user.setdefault(event.user, []).append(event)
    fit, held = [], {}
    for user, sequence in by_user.items():
        if len(sequence) < holdout + min_history:
            fit.extend(sequence)
            continue
        kept, latest = sequence[:-holdout], sequence[-holdout:]
        fit.extend(kept)
        before = {e.item for e in kept}
        new = {e.item for e in latest} - before
        if new:
            held[user] = new
    return fit, held


def validation_pools(client: Elasticsearch, alias: str, fit: list[Event],
                     held: dict[str, set[str]], model: ItemNeighbours, rec: RecSettings,
                     users: list[str]) -> Validation:
    """The served pool and source scores of each user, as of the fitted part."""
    clicks = Counter(e.item for e in fit)
    counts = dict(sorted(clicks.items(), key=lambda p: (-p[1], p[0]))[:POPULAR_COUNTS])
    sequences: dict[str, list[str]] = {}
    for event in sorted(fit, key=lambda e: e.ts):
        sequences.setdefault(event.user, []).append(event.item)
    result = Validation()
    started = time.monotonic()
    for n, user in enumerate(users, start=1):
        sequence = sequences.get(user, [])
        profile = recency_profile(sequence, rec.profile_half_life)
        seen = set(sequence)
        collaborative = {d: v for d, v in score_history(
            (model.of(d) for d in profile), profile.values(), profile).items()
            if d not in seen}
        if not collaborative:  # served without the blend: the weights do not matter
            continue
        pool = gather(client, alias, profile, seen, collaborative, counts, rec.interests,
                      rec.blend_per_interest, rec.candidates)
        ids = sorted(pool.doc_ids)
        scaled = [min_max(pool.sources[name]) for name in SOURCES]
        result.pools.append(_Pool(
            np.asarray([[s[d] for s in scaled] for d in ids], dtype=np.float64),
            np.asarray([d in held[user] for d in ids], dtype=bool), len(held[user])))
        if n % 100 == 0:
            spent = time.monotonic() - started
            log.info("tuning: %d/%d validation users gathered, ETA %.0f s", n, len(users),
                     spent / n * (len(users) - n))
    return result


def tune(client: Elasticsearch, alias: str, events: list[Event],
         fit_model: Callable[[list[Event]], ItemNeighbours], live: dict | None,
         settings: TuneSettings, rec: RecSettings = SHIPPED) -> dict:
    """Tunes the blend on ``events`` (the deployment's positive events). Returns the report;
    ``install`` says whether its ``weights`` should replace the live ones."""
    fit, held = split_latest(events, settings.holdout, settings.min_history)
    users = sorted(held)
    if len(users) > settings.max_users:
        users = sorted(random.Random(settings.seed).sample(users, settings.max_users))
    if len(users) < settings.min_users:
        return {"install": False, "skipped": f"{len(users)} users have {settings.holdout} "
                f"held-out and {settings.min_history} earlier events; tuning needs "
                f"{settings.min_users}", "settings": settings.to_dict()}
    validation = validation_pools(client, alias, fit, held, fit_model(fit), rec, users)
    if validation.users < settings.min_users:
        return {"install": False, "skipped": f"only {validation.users} validation users have "
                f"collaborative candidates; tuning needs {settings.min_users}",
                "settings": settings.to_dict()}
    scored = [(validation.ndcg(w, settings.k), w) for w in settings.grid()]
    best_ndcg, best = max(scored, key=lambda pair: pair[0])  # first of equals: grid order
    shipped = SHIPPED.weights()
    report = {
        "weights": best,
        "validation": {f"ndcg@{settings.k}": round(best_ndcg, 6), "users": validation.users,
                       "holdout": settings.holdout, "grid": len(scored)},
        "baseline": {"weights": shipped,
                     f"ndcg@{settings.k}": round(validation.ndcg(shipped, settings.k), 6)},
        "settings": settings.to_dict()}
    report["install"] = True
    if live:
        live_ndcg = validation.ndcg(live["weights"], settings.k)
        report["live"] = {"weights": live["weights"], f"ndcg@{settings.k}": round(live_ndcg, 6)}
        report["install"] = best_ndcg >= live_ndcg
    return report
