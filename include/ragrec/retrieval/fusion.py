"""Fusion arithmetic: reciprocal rank fusion, convex combination of normalised scores, and
blending in a reranker's scores.

Everything here is pure (no I/O), so the tuned weights are easy to test and to explain.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60


def ranked(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: (-scores[d], d))


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (k + rank)
    return fused


def min_max(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {d: (s - low) / span if span > 0 else 1.0 for d, s in scores.items()}


def convex(bm25: dict[str, float], dense: dict[str, float], weight: float) -> dict[str, float]:
    """``weight`` x normalised dense + (1 - weight) x normalised BM25; a document one system
    did not retrieve gets 0 from it."""
    a, b = min_max(bm25), min_max(dense)
    return {d: weight * b.get(d, 0.0) + (1 - weight) * a.get(d, 0.0) for d in set(a) | set(b)}


def blend(first_stage: dict[str, float], cross: dict[str, float],
          weight: float) -> dict[str, float]:
    """The reranked head's scores: ``weight`` x normalised cross-encoder score + (1 - weight)
    x normalised first-stage score."""
    a, b = min_max(cross), min_max({d: first_stage.get(d, 0.0) for d in cross})
    return {d: weight * a[d] + (1 - weight) * b[d] for d in cross}
