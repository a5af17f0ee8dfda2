"""Places for what collaboration cannot see yet.

Collaborative scores come from what people consumed together, so an item few people have
consumed (a new document) gets none, or too little to ever reach a list. A list of ``k``
therefore keeps its last ``slots`` places for the best *cold* candidates - items with at
most ``cold_users`` consumers whose content is close to what the user read (their content
score, min-max scaled over the user's candidates, at least ``cold_min_content``); the
places stay with the main ranking when there are no such candidates. The served
recommender and the offline benchmark both use ``with_cold_slots``; ``cold_candidates``
finds the served cold candidates on the feature table."""

from __future__ import annotations

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.recs import item_table
from ragrec.retrieval.queries import cosine_of, knn_query


def with_cold_slots(ranked: list[str], cold: list[str], k: int, slots: int) -> list[str]:
    """The first ``k`` of ``ranked`` with its last ``slots`` places given to the best of
    ``cold`` (in its order) not already in the list."""
    if slots <= 0:
        return ranked[:k]
    head = ranked[:max(k - slots, 0)]
    taken = set(head)
    extra = [item for item in cold if item not in taken][:slots]
    taken.update(extra)
    rest = [item for item in ranked[len(head):] if item not in taken]
    return head + extra + rest[:k - len(head) - len(extra)]


def cold_candidates(client: Elasticsearch, alias: str, profile: dict[str, float],
                    seen: set[str], max_consumers: int, min_similarity: float,
                    count: int, interests: int = 5) -> list[tuple[str, float]]:
    """The items at most ``max_consumers`` users consumed, closest in the tower's space to
    the profile's ``interests`` newest items (their rec_vectors, weighted by the profile):
    ``(doc_id, cosine)``, best first, cosine at least ``min_similarity``."""
    table = item_table.feature_table(alias)
    recent = sorted(profile, key=lambda d: -profile[d])[:interests]
    if not recent or not client.indices.exists(index=table):
        return []
    docs = client.mget(index=table, ids=[item_table.item_id(d) for d in recent],
                       source=["rec_vector"])["docs"]
    query = None
    for doc_id, doc in zip(recent, docs, strict=True):
        vector = (doc.get("_source") or {}).get("rec_vector") if doc.get("found") else None
        if vector is not None:
            part = profile[doc_id] * np.asarray(vector, dtype=np.float32)
            query = part if query is None else query + part
    if query is None or not np.linalg.norm(query):
        return []
    cold = {"bool": {"should": [{"range": {"consumers": {"lte": max_consumers}}},
                                {"bool": {"must_not": {"exists": {"field": "consumers"}}}}],
                     "minimum_should_match": 1,
                     "must_not": [{"terms": {"doc_id": sorted(seen)}}]}}
    response = client.search(index=table, size=count, source=["doc_id"], knn=knn_query(
        query / np.linalg.norm(query), count, filters=cold, field="rec_vector"))
    found = [(h["_source"]["doc_id"], cosine_of(h["_score"]))
             for h in response["hits"]["hits"]]
    return [(d, s) for d, s in found if s >= min_similarity]
