"""The learned recommendation ranker: a small listwise model over per-candidate features,
trained by ``rec_train`` on the deployment's own held-out behaviour and served, as a model
version, by the model server's ``/rank`` route (AIRec's custom ranker and ``/recommend``
call the same route).

Features of a candidate (``candidate_features``: computed in this one place, from the
sources ``recs.blend.gather`` scores, by the tuning and by serving alike):

* each source's score min-max scaled over the user's pool (the blend's own inputs, so the
  ranker can express any blend), its reciprocal rank within the source and, for the
  collaborative and content sources, whether the candidate came from it;
* ``popularity``: ``log1p`` of the candidate's clicks, unscaled, and
  ``recent_popularity``: the same over the last ``RecSettings.recent_days`` (what is read
  now, not what was read once).

The user's consumed-history length (``log1p``) enters as products with the scaled sources,
so a user with three clicks can lean on content while one with three hundred leans on
collaboration. The model (``models.ranker.Ranker``, the served artefact) is linear in those
columns (standardised), fitted by L-BFGS on the softmax cross-entropy of each validation
user's held-out documents over their pool, with an L2 penalty: a few dozen numbers, a
microsecond a candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ragrec.models import ranker as served
from ragrec.models.ranker import Ranker
from ragrec.recs.blend import SOURCES
from ragrec.retrieval.fusion import min_max

FLAGGED = ("collaborative", "content")
BASE_FEATURES = (*SOURCES, *(f"{s}_rank" for s in SOURCES), *(f"in_{s}" for s in FLAGGED),
                 "popularity", "recent_popularity")
COLUMNS = (*BASE_FEATURES, served.HISTORY, *(served.PRODUCT + s for s in SOURCES))


def candidate_features(sources: Mapping[str, Mapping[str, float]], doc_ids: Sequence[str],
                       recent: Mapping[str, int]) -> list[dict[str, float]]:
    """One feature row per id of ``doc_ids`` (the pool, in the caller's order) from the raw
    source scores of ``recs.blend.Pool.sources`` and ``recent``, clicks per document in
    the last ``RecSettings.recent_days``."""
    rows = [dict.fromkeys(BASE_FEATURES, 0.0) for _ in doc_ids]
    for name in SOURCES:
        raw = sources.get(name, {})
        scaled = min_max(dict(raw))
        ranked = [d for d in sorted(raw, key=lambda d: (-raw[d], d)) if raw[d] > 0]
        rank = {d: n for n, d in enumerate(ranked)}
        for row, doc_id in zip(rows, doc_ids, strict=True):
            row[name] = scaled.get(doc_id, 0.0)
            row[f"{name}_rank"] = 1.0 / (1 + rank[doc_id]) if doc_id in rank else 0.0
            if name in FLAGGED:
                row[f"in_{name}"] = float(raw.get(doc_id, 0.0) > 0)
    popular = sources.get("popular", {})
    for row, doc_id in zip(rows, doc_ids, strict=True):
        row["popularity"] = float(popular.get(doc_id, 0.0))
        row["recent_popularity"] = float(np.log1p(recent.get(doc_id, 0)))
    return rows


def design(rows: Sequence[Mapping[str, float]], history: int) -> np.ndarray:
    """The model's columns (``COLUMNS``) for one user's candidate rows."""
    return served.design(COLUMNS, rows, history)


@dataclass
class Example:
    """One validation user's pool: its ``design`` matrix and which rows were held out."""

    matrix: np.ndarray
    relevant: np.ndarray  # bool per row
    held: int
    group: str = ""  # whose pool (cross-validation keeps a user's pools in one fold)


def fit(examples: Sequence[Example], l2: float = 1.0, max_iter: int = 300) -> Ranker:
    """Listwise softmax cross-entropy of the held-out rows over each pool, L2-penalised,
    on standardised columns (L-BFGS)."""
    from scipy.optimize import minimize

    used = [e for e in examples if e.relevant.any()]
    if not used:
        raise ValueError("no validation user has a held-out document among their candidates")
    stacked = np.vstack([e.matrix for e in used])
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    scale[scale < 1e-9] = 1.0
    matrices = [(e.matrix - mean) / scale for e in used]
    targets = [e.relevant / e.relevant.sum() for e in used]

    def loss(weights: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.5 * l2 * float(weights @ weights), l2 * weights
        for matrix, target in zip(matrices, targets, strict=True):
            scores = matrix @ weights
            top = scores.max()
            exp = np.exp(scores - top)
            norm = exp.sum()
            total += float(np.log(norm) + top - target @ scores)
            grad = grad + matrix.T @ (exp / norm - target)
        return total / len(matrices), grad / len(matrices)

    start = np.zeros(stacked.shape[1])
    result = minimize(loss, start, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter})
    return Ranker(COLUMNS, mean, scale, result.x)


