"""The recommendation blend and the learned ranker tuned on each deployment's own log,
every ``rec_train`` run.

Each user's latest ``positions`` steps of ``holdout`` positive events are held out
(time-based validation), each step a case whose history is what the user consumed before
it; the item neighbours are fitted on the rest, exactly as ``rec_train`` fits them on
everything; then, for the cases of a sample of users, the served candidate pool and its
source scores are gathered once through ``recs.blend.gather`` (the content neighbours from
the real chunk index, the collaborative scores and popularity from the fitted part), and
every weight combination of the grid ranks those pools as ``/recommend/user`` would
(``recs.blend.fuse``: min-max scaled sources, ties by document id). NDCG@k against the
held-out documents picks the weights. The learned ranker (``recs.ranker``) is fitted on the
same pools and kept only when it beats the blend out of fold (``compare_ranker``). The
shipped weights and the live setup are scored on the same cases, and the result replaces
the live setup only when it scores at least as well. The test split of a benchmark never
reaches this code: it only sees the log."""

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

from ragrec.recs.blend import POPULAR_COUNTS, SOURCES, gather, weight_vector
from ragrec.recs.content import interest_neighbours
from ragrec.recs.interactions import Event, recency_profile
from ragrec.recs.neighbours import ItemNeighbours, score_history
from ragrec.recs.ranker import Example, Ranker, candidate_features, design
from ragrec.recs.ranker import fit as fit_ranker
from ragrec.recs.setup import SHIPPED, RecSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneSettings:
    holdout: int = 1  # positive events held out a validation step
    positions: int = 3  # a user's latest steps, each a validation case (more signal a user)
    min_history: int = 2  # events a validation user keeps to be scored from
    min_users: int = 20  # fewer validation users: not tuned, the live setup stays
    max_users: int = 500  # a seeded sample beyond this
    k: int = 10
    seed: int = 7
    collaborative: tuple[float, ...] = (0.0, 1.0)
    content: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6)
    popular: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)
    ranker: bool = True  # also fit the learned ranker; kept only if it wins out of fold
    ranker_l2: float = 1.0
    ranker_margin: float = 2.0  # standard errors of the paired gain the ranker must clear
    methods: tuple[str, ...] = ("ease", "cooccurrence")  # the neighbour models tried
    folds: int = 2

    def grid(self) -> list[dict[str, float]]:
        return [dict(zip(SOURCES, combo, strict=True)) for combo in
                itertools.product(self.collaborative, self.content, self.popular)
                if any(combo)]

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_TUNING = TuneSettings()


@dataclass
class Validation:
    """The validation users' pools (``ranker.Example``: the ranker's design matrix, whose
    first columns are the sources min-max scaled over the pool as the blend sees them;
    rows in id order, so ties break by id as served)."""

    pools: list[Example] = field(default_factory=list)

    @property
    def users(self) -> int:
        return len({pool.group for pool in self.pools})

    def subset(self, indices) -> Validation:
        return Validation([self.pools[i] for i in indices])

    def ndcg(self, weights: dict[str, float], k: int) -> float:
        vector = weight_vector(weights)
        return self.ndcg_of([pool.matrix[:, :len(SOURCES)] @ vector for pool in self.pools], k)

    def ndcg_of(self, scores: list[np.ndarray], k: int) -> float:
        """Mean NDCG@k of the pools ranked by ``scores`` (one array per pool)."""
        per_case = self.per_case(scores, k)
        return float(per_case.mean()) if len(per_case) else 0.0

    def per_case(self, scores: list[np.ndarray], k: int) -> np.ndarray:
        values = np.zeros(len(self.pools))
        for n, (pool, ranking) in enumerate(zip(self.pools, scores, strict=True)):
            order = np.argsort(-ranking, kind="stable")[:k]
            gains = pool.relevant[order]
            dcg = float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())
            values[n] = dcg / sum(1.0 / math.log2(r + 2) for r in range(min(pool.held, k)))
        return values

    def ranker_ndcg(self, model: Ranker, k: int) -> float:
        return self.ndcg_of([model.score_matrix(pool.matrix) for pool in self.pools], k)


@dataclass(frozen=True)
class Case:
    """One validation example: a user's consumed items before a point in time (oldest
    first) and the new documents of their next ``holdout`` events."""

    user: str
    history: tuple[str, ...]
    held: frozenset[str]


def validation_cases(events: list[Event], holdout: int, min_history: int,
                     positions: int = 1) -> tuple[list[Event], list[Case]]:
    """(the events kept for fitting, the cases): each user's latest ``positions`` steps of
    ``holdout`` events are held out, each step a case whose history is everything the user
    consumed before it; a user keeps at least ``min_history`` events before the first step
    (fewer steps for a short history, none below that). A held document the user had
    consumed before does not count (consumed items are never shown)."""
    by_user: dict[str, list[Event]] = {}
    for event in sorted(events, key=lambda e: (e.ts, e.item)):
        by_user.setdefault(event.user, []).append(event)
    fit, cases = [], []
    for user, sequence in by_user.items():
        steps = min(positions, (len(sequence) - min_history) // holdout)
        if steps <= 0:
            fit.extend(sequence)
            continue
        first = len(sequence) - steps * holdout
        fit.extend(sequence[:first])
        for start in range(first, len(sequence), holdout):
            before = tuple(e.item for e in sequence[:start])
            new = {e.item for e in sequence[start:start + holdout]} - set(before)
            if new:
                cases.append(Case(user, before, frozenset(new)))
    return fit, cases


def validation_pools(client: Elasticsearch, alias: str, fit: list[Event], cases: list[Case],
                     models: dict[str, ItemNeighbours],
                     rec: RecSettings) -> dict[str, Validation]:
    """The served pool and source scores of each case, as of the fitted part, for each
    neighbour model of ``models`` (the content candidates are searched once a case)."""
    clicks = Counter(e.item for e in fit)
    counts = dict(sorted(clicks.items(), key=lambda p: (-p[1], p[0]))[:POPULAR_COUNTS])
    last = max(e.ts for e in fit)
    recent = Counter(e.item for e in fit if e.ts >= last - rec.recent_days * 86400)
    result = {method: Validation() for method in models}
    started = time.monotonic()
    for n, case in enumerate(cases, start=1):
        sequence = list(case.history)
        profile = recency_profile(sequence, rec.profile_half_life)
        seen = set(sequence)
        content = None
        for method, model in models.items():
            collaborative = {d: v for d, v in score_history(
                (model.of(d) for d in profile), profile.values(), profile).items()
                if d not in seen}
            if not collaborative:  # served without the blend: the weights do not matter
                continue
            if content is None:
                content = interest_neighbours(client, alias, profile, seen, rec.interests,
                                              rec.blend_per_interest)
            pool = gather(client, alias, profile, seen, collaborative, counts, rec.interests,
                          rec.blend_per_interest, rec.candidates, dict(content))
            ids = sorted(pool.doc_ids)
            rows = candidate_features(pool.sources, ids, recent)
            result[method].pools.append(Example(
                design(rows, len(seen)), np.asarray([d in case.held for d in ids], dtype=bool),
                len(case.held), case.user))
        if n % 200 == 0:
            spent = time.monotonic() - started
            log.info("tuning: %d/%d validation cases gathered, ETA %.0f s", n, len(cases),
                     spent / n * (len(cases) - n))
    return result


def tune(client: Elasticsearch, alias: str, events: list[Event],
         fit_model: Callable[[list[Event], str], ItemNeighbours], live: dict | None,
         settings: TuneSettings, rec: RecSettings = SHIPPED,
         live_ranker: Ranker | None = None, methods: tuple[str, ...] | None = None) -> dict:
    """Tunes the blend on ``events`` (the deployment's positive events) and, unless
    ``settings.ranker`` is off, fits the learned ranker and keeps it when it beats the blend
    out of fold (``report["ranker"]["model"]``). Returns the report; ``install`` says
    whether the result should replace the live setup (``live``, scored with
    ``live_ranker`` when it has one). Each neighbour model of ``methods`` (default
    ``settings.methods``; ``fit_model(events, method)`` fits one) is tried: the pools of
    each, the best weights of each, and the best of all is the ``method``."""
    fit, cases = validation_cases(events, settings.holdout, settings.min_history,
                                  settings.positions)
    users = sorted({case.user for case in cases})
    if len(users) > settings.max_users:
        users = set(random.Random(settings.seed).sample(users, settings.max_users))
        cases = [case for case in cases if case.user in users]
    if len(users) < settings.min_users:
        return {"install": False, "skipped": f"{len(users)} users have {settings.holdout} "
                f"held-out and {settings.min_history} earlier events; tuning needs "
                f"{settings.min_users}", "settings": settings.to_dict()}
    methods = methods or settings.methods
    validations = validation_pools(client, alias, fit, cases,
                                   {m: fit_model(fit, m) for m in methods}, rec)
    fewest = min(v.users for v in validations.values())
    if fewest < settings.min_users:
        return {"install": False, "skipped": f"only {fewest} validation users have "
                f"collaborative candidates; tuning needs {settings.min_users}",
                "settings": settings.to_dict()}
    grid = settings.grid()
    by_method = {}
    for method, pools in validations.items():  # first of equals: method, then grid order
        by_method[method] = max(((pools.ndcg(w, settings.k), w) for w in grid),
                                key=lambda pair: pair[0])
    method = max(by_method, key=lambda m: by_method[m][0])
    best_ndcg, best = by_method[method]
    validation = validations[method]
    shipped = SHIPPED.weights()
    key = f"ndcg@{settings.k}"
    report = {
        "method": method, "weights": best,
        "methods": {m: round(ndcg, 6) for m, (ndcg, _) in by_method.items()},
        "validation": {key: round(best_ndcg, 6), "users": validation.users,
                       "cases": len(validation.pools), "holdout": settings.holdout,
                       "positions": settings.positions, "grid": len(grid)},
        "baseline": {"weights": shipped, key: round(validation.ndcg(shipped, settings.k), 6)},
        "settings": settings.to_dict()}
    chosen = best_ndcg
    if settings.ranker:
        report["ranker"] = compare_ranker(validation, settings)
        if report["ranker"]["wins"]:
            model = fit_ranker(validation.pools, settings.ranker_l2)
            report["ranker"]["model"] = model.to_dict()
            chosen = report["ranker"][f"ranker_{key}"]
    report["install"] = True
    if live:
        own = validations.get(live.get("method"), validation)  # its own neighbours' pools
        live_ndcg = (own.ranker_ndcg(live_ranker, settings.k) if live_ranker is not None
                     else own.ndcg(live["weights"], settings.k))
        report["live"] = {"weights": live["weights"], key: round(live_ndcg, 6),
                          "ranker": live_ranker.version if live_ranker is not None else None}
        report["install"] = chosen >= live_ndcg
    return report


def compare_ranker(validation: Validation, settings: TuneSettings) -> dict:
    """The learned ranker against the tuned blend, both out of fold: the validation users
    split in ``folds`` (seeded); on each, the blend's weights picked by the grid and the
    ranker fitted on the other folds, then scored on this one (a user's cases stay in one
    fold). ``wins``: the ranker's mean gain in NDCG a user is above ``ranker_margin``
    standard errors of that gain (a held-out event or three a user make NDCG noisy: a
    sample of 500 users moves it by about 0.01, and a ranker that wins by noise is not
    installed)."""
    users = sorted({pool.group for pool in validation.pools})
    random.Random(settings.seed).shuffle(users)
    fold_of = {user: n % settings.folds for n, user in enumerate(users)}
    folds = [[i for i, pool in enumerate(validation.pools) if fold_of[pool.group] == n]
             for n in range(settings.folds)]
    blend_scores: list[np.ndarray | None] = [None] * len(validation.pools)
    ranker_scores: list[np.ndarray | None] = [None] * len(validation.pools)
    for held in folds:
        rest = sorted(set(range(len(validation.pools))) - set(held))
        train = validation.subset(rest)
        weights = max(settings.grid(), key=lambda w: train.ndcg(w, settings.k))
        vector = weight_vector(weights)
        try:
            model = fit_ranker(train.pools, settings.ranker_l2)
        except ValueError as exc:  # no held-out document among a fold's candidates
            return {"wins": False, "skipped": str(exc), "folds": settings.folds}
        for index in held:
            matrix = validation.pools[index].matrix
            blend_scores[index] = matrix[:, :len(SOURCES)] @ vector
            ranker_scores[index] = model.score_matrix(matrix)
    key = f"ndcg@{settings.k}"
    blend = validation.per_case(blend_scores, settings.k)
    ranker = validation.per_case(ranker_scores, settings.k)
    by_user: dict[str, list[float]] = {}  # a user's cases are not independent: one gain each
    for pool, difference in zip(validation.pools, ranker - blend, strict=True):
        by_user.setdefault(pool.group, []).append(float(difference))
    gain = np.asarray([np.mean(values) for values in by_user.values()])
    error = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.inf
    return {f"blend_{key}": round(float(blend.mean()), 6),
            f"ranker_{key}": round(float(ranker.mean()), 6),
            "gain": round(float((ranker - blend).mean()), 6),
            "gain_standard_error": round(error, 6),
            "folds": settings.folds,
            "wins": bool(gain.mean() > settings.ranker_margin * error)}
