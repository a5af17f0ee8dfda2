"""Content candidates on the chunk index: a document's vector, its nearest documents by
their best chunk, and a user's interests (the neighbours of recently consumed documents) -
the content source of every recommendation surface."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.indexing.chunk_document import (
    NEIGHBOURS,
    SUMMARY,
    VECTORS,
    document_vector,
    unit,
)
from ragrec.recs.interactions import half_life_weight
from ragrec.retrieval.queries import cosine_of, excluding_documents, knn_query


def doc_vectors(client: Elasticsearch, alias: str, doc_ids: list[str]) -> dict[str, np.ndarray]:
    """Normalised mean chunk vector per document."""
    if not doc_ids:
        return {}
    response = client.search(index=alias, size=10_000, source=VECTORS,
                             query={"terms": {"doc_id": doc_ids}})
    grouped: dict[str, list] = {}
    for hit in response["hits"]["hits"]:
        grouped.setdefault(hit["_source"]["doc_id"], []).append(hit["_source"]["vector"])
    return {d: document_vector(v) for d, v in grouped.items()}


def first_chunks(client: Elasticsearch, alias: str, doc_ids: list[str]) -> dict[str, dict]:
    """doc_id -> a candidate row (title, excerpt, ...) from the document's first chunk."""
    if not doc_ids:
        return {}
    response = client.search(index=alias, size=len(doc_ids),
                             source=SUMMARY,
                             query={"bool": {"filter": [{"terms": {"doc_id": doc_ids}},
                                                        {"term": {"chunk_no": 0}}]}})
    rows = {}
    for hit in response["hits"]["hits"]:
        source = hit["_source"]
        rows[source["doc_id"]] = {
            "doc_id": source["doc_id"], "title": source.get("title") or source["doc_id"],
            "chunk_no": 0, "excerpt": " ".join(source["text"].split())[:300],
            "source_uri": source.get("source_uri") or "", "similarity": None}
    return rows


def candidates(client: Elasticsearch, alias: str, vector: np.ndarray, exclude: set[str],
                count: int) -> list[dict]:
    """Best chunk per document, by cosine to ``vector``, excluding ``exclude``."""
    return candidates_of(client, alias, [vector], exclude, count)[0]


def candidates_of(client: Elasticsearch, alias: str, vectors: list[np.ndarray],
                   exclude: set[str], count: int, with_vectors: bool = True) -> list[list[dict]]:
    """``candidates`` for several vectors in one round trip (``msearch``); without
    ``with_vectors`` the rows carry no ``_vector`` (a smaller answer)."""
    if not vectors:
        return []
    source = NEIGHBOURS if with_vectors else [*SUMMARY, "chunk_no"]
    searches = []
    for vector in vectors:
        knn = knn_query(vector, count, max(200, 2 * count),
                        excluding_documents(exclude) if exclude else None)
        searches += [{"index": alias}, {"size": count, "knn": knn, "_source": source}]
    lists = []
    for answer in client.msearch(searches=searches)["responses"]:
        if "error" in answer:
            raise RuntimeError(f"Elasticsearch refused a neighbour search: {answer['error']}")
        best: dict[str, dict] = {}
        for hit in answer["hits"]["hits"]:
            row = hit["_source"]
            if row["doc_id"] not in best:
                best[row["doc_id"]] = {
                    "doc_id": row["doc_id"], "title": row.get("title") or row["doc_id"],
                    "chunk_no": row["chunk_no"], "excerpt": " ".join(row["text"].split())[:300],
                    "source_uri": row.get("source_uri") or "",
                    "similarity": round(cosine_of(hit["_score"]), 6)}
                if with_vectors:
                    best[row["doc_id"]]["_vector"] = np.asarray(row["vector"], dtype=np.float32)
        lists.append(list(best.values()))
    return lists


def click_weights(history: list[dict], now: datetime, half_life_days: float) -> dict:
    """doc_id -> summed ``0.5 ** (age / half_life)`` of the user's clicks on it."""
    weights: dict[str, float] = {}
    for event in history:
        age = (now - datetime.fromisoformat(event["ts"])).total_seconds() / 86400
        weights[event["doc_id"]] = (weights.get(event["doc_id"], 0.0)
                                    + half_life_weight(age, half_life_days))
    return weights


def user_profile(history: list[dict], vectors: dict[str, np.ndarray], now: datetime,
                 half_life_days: float) -> np.ndarray | None:
    """One vector for the user: the click-weighted mean of the clicked documents' vectors."""
    total = None
    for doc_id, weight in click_weights(history, now, half_life_days).items():
        vector = vectors.get(doc_id)
        if vector is not None:
            total = weight * vector if total is None else total + weight * vector
    return None if total is None else unit(total)


def interest_neighbours(client: Elasticsearch, alias: str, weights: dict[str, float],
                        seen: set[str], interests: int, per_interest: int) -> dict[str, dict]:
    """Multi-interest candidates: the neighbours of each of the ``interests`` most recently
    clicked documents (one ``msearch``), scored by the click-weighted sum of their
    similarities (a mean vector of two unrelated interests points at neither)."""
    recent = sorted(weights, key=lambda d: -weights[d])[:interests]  # ties: newest
    vectors = doc_vectors(client, alias, recent)
    recent = [d for d in recent if d in vectors]
    pool: dict[str, dict] = {}
    lists = candidates_of(client, alias, [vectors[d] for d in recent], seen,
                           per_interest, with_vectors=False)
    for doc_id, rows in zip(recent, lists, strict=True):
        for row in rows:
            entry = pool.setdefault(row["doc_id"], {**row, "_score": 0.0})
            entry["_score"] += weights[doc_id] * max(row["similarity"], 0.0)
            entry["similarity"] = max(entry["similarity"], row["similarity"])
    return pool
