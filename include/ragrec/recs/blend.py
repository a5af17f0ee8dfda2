"""The candidates of a user or of an item once ``rec_train`` has learned collaborative
neighbours, and how they are combined: the one definition ``/recommend/user`` and
``/recommend/item`` serve and ``rec_train``'s tuning scores on held-out behaviour
(``ragrec.recs.tuning``), so what is tuned is what is served.

``gather`` (a user) and ``gather_item`` (an item) answer the same ``Pool``: display rows
and three sources, each a raw score per candidate document:

* ``collaborative``: the user's profile scored through the learned item neighbours
  (``neighbours.score_history``), or the item's own stored neighbours;
* ``content``: the neighbours of the profile's newest documents on the chunk index, by the
  profile-weighted sum of their similarities (``content.interest_neighbours``), or the
  item's content neighbours by cosine;
* ``popular``: ``log1p`` of the document's click count.

A user's pool is the content candidates, the ``candidates`` best collaborative ones and the
``blend_per_interest`` most popular unseen documents; an item's, its content and
collaborative neighbours. ``fuse`` min-max scales each source over the pool and adds them
with the tuned weights; the learned ranker (``recs.ranker``) reads the same sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.recs import neighbours as nb
from ragrec.recs.content import candidates as content_candidates
from ragrec.recs.content import doc_vectors, first_chunks, interest_neighbours
from ragrec.recs.item_table import neighbour_lists
from ragrec.retrieval.fusion import min_max

SOURCES = ("collaborative", "content", "popular")
POPULAR_COUNTS = 200  # the most clicked documents: the popular source and its candidates


@dataclass
class Pool:
    rows: dict[str, dict]  # content candidates' display rows (best chunk), by doc_id
    sources: dict[str, dict[str, float]]  # source -> doc_id -> raw score, every pool doc

    @property
    def doc_ids(self) -> list[str]:
        return list(self.sources[SOURCES[0]])

    def keep(self, doc_ids) -> None:
        """Only these candidates (those the index could still show)."""
        keep = set(doc_ids)
        self.sources = {name: {d: v for d, v in values.items() if d in keep}
                        for name, values in self.sources.items()}


def collaborative_scores(client: Elasticsearch, alias: str,
                         profile: dict[str, float]) -> dict[str, float]:
    """The served form of ``ItemNeighbours.scores``: the profile's stored neighbour lists,
    summed by the profile's weights, its own items left out."""
    lists = neighbour_lists(client, alias, list(profile))
    items = [d for d in profile if d in lists]
    return nb.score_history((lists[d] for d in items), (profile[d] for d in items), profile)


def gather(client: Elasticsearch, alias: str, profile: dict[str, float], seen: set[str],
           collaborative: dict[str, float], counts: dict[str, int], interests: int,
           per_interest: int, candidates: int, rows: dict[str, dict] | None = None) -> Pool:
    """The pool and its source scores for one user. ``collaborative`` excludes ``seen``;
    ``counts``: clicks per document, most first; ``rows``: the content candidates when the
    caller has them already (``content.interest_neighbours``)."""
    if rows is None:
        rows = interest_neighbours(client, alias, profile, seen, interests, per_interest)
    top_cf = sorted(collaborative, key=lambda d: (-collaborative[d], d))[:candidates]
    top_popular = [d for d in counts if d not in seen][:per_interest]
    pool = list(dict.fromkeys([*rows, *top_cf, *top_popular]))
    return Pool(rows, {
        "collaborative": {d: collaborative.get(d, 0.0) for d in pool},
        "content": {d: rows[d]["_score"] if d in rows else 0.0 for d in pool},
        "popular": _popular(pool, counts)})


def gather_item(client: Elasticsearch, alias: str, doc_id: str, vector: np.ndarray,
                also: dict[str, float], counts: dict[str, int], candidates: int) -> Pool:
    """The pool of documents to show beside ``doc_id`` (whose document vector is
    ``vector``): its ``candidates`` nearest by content and its learned neighbours ``also``
    (rows carry ``_vector`` for MMR)."""
    rows = {c["doc_id"]: c for c in content_candidates(client, alias, vector, {doc_id},
                                                         candidates)}
    missing = [d for d in also if d not in rows and d != doc_id]
    vectors = doc_vectors(client, alias, missing)
    for d, row in first_chunks(client, alias, [d for d in missing if d in vectors]).items():
        rows[d] = {**row, "similarity": round(float(vectors[d] @ vector), 6),
                   "_vector": vectors[d]}
    return Pool(rows, {
        "collaborative": {d: also.get(d, 0.0) for d in rows},
        "content": {d: float(c["similarity"]) for d, c in rows.items()},
        "popular": _popular(rows, counts)})


def _popular(doc_ids, counts: dict[str, int]) -> dict[str, float]:
    return {d: float(np.log1p(counts.get(d, 0))) for d in doc_ids}


def weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    """The weights in ``SOURCES`` order (a missing source weighs 0)."""
    return np.asarray([weights.get(name, 0.0) for name in SOURCES])


def fuse(sources: Mapping[str, Mapping[str, float]],
         weights: Mapping[str, float]) -> dict[str, float]:
    """Each source min-max scaled over the pool, times its weight, summed."""
    fused = dict.fromkeys(next(iter(sources.values()), {}), 0.0)
    for name, values in sources.items():
        weight = weights.get(name, 0.0)
        if weight:
            for doc_id, value in min_max(dict(values)).items():
                fused[doc_id] += weight * value
    return fused
