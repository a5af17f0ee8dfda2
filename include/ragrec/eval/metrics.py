"""Document-level retrieval metrics: nDCG@10, Recall@100 and MRR@10 over judged queries.

A ranking of chunks is collapsed to documents first (each at its best chunk's rank),
because qrels judge documents; a judged id matches an indexed document whose id is the
same, or the same without its file extension, or whose file name without extension it is
(``4983`` matches ``scifact/4983.md``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from pathlib import PurePosixPath


def _keys(doc_id: str) -> tuple[str, ...]:
    path = PurePosixPath(doc_id)
    return (doc_id, doc_id.rsplit(".", 1)[0] if "." in path.name else doc_id, path.stem)


def judged_ranking(hit_doc_ids: Iterable[str], judged: Collection[str]) -> list[str]:
    """Chunk hits' document ids (in rank order) as a ranking of judged ids: each document
    once, at its best rank, named as the qrels name it (unjudged ones keep their id)."""
    ranking: dict[str, None] = {}
    for doc_id in hit_doc_ids:
        ranking.setdefault(next((k for k in _keys(doc_id) if k in judged), doc_id), None)
    return list(ranking)


def doc_ranking(hit_doc_ids: Iterable[str]) -> list[str]:
    """Collapse chunk hits (in rank order) to documents, keeping each document's best rank
    (ids without their ``.md``: how a BEIR corpus written as files is named)."""
    seen: dict[str, None] = {}
    for doc_id in hit_doc_ids:
        seen.setdefault(doc_id.removesuffix(".md"), None)
    return list(seen)


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    positives = {d for d, g in relevant.items() if g > 0}
    return len(positives & set(ranked[:k])) / len(positives) if positives else 0.0


def mrr_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def ndcg_by_query(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]
                  ) -> dict[str, float]:
    """nDCG@10 of each judged query the run answers."""
    return {q: ndcg_at(run[q], qrels[q]) for q in qrels if q in run}


def score_run(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries."""
    queries = [q for q in qrels if q in run]
    if not queries:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "queries": 0}
    return {
        "ndcg@10": sum(ndcg_by_query(run, qrels).values()) / len(queries),
        "recall@100": sum(recall_at(run[q], qrels[q]) for q in queries) / len(queries),
        "mrr@10": sum(mrr_at(run[q], qrels[q]) for q in queries) / len(queries),
        "queries": len(queries),
    }
