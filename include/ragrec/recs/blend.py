"""A user's candidates once ``rec_train`` has learned collaborative neighbours, and how they
are combined: the one definition ``/recommend/user`` serves and ``rec_train``'s tuning
scores on held-out behaviour (``ragrec.recs.tuning``), so what is tuned is what is served.

Three sources, each a raw score per candidate document:

* ``collaborative``: the profile scored through the learned item neighbours
  (``neighbours.score_history``);
* ``content``: the neighbours of the profile's newest documents on the chunk index, by the
  profile-weighted sum of their similarities (``content.interest_neighbours``);
* ``popular``: ``log1p`` of the document's click count.

The pool is the content candidates, the ``candidates`` best collaborative ones and the
``blend_per_interest`` most popular unseen documents. ``fuse`` min-max scales each source
over the pool and adds them with the setup's weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.recs.content import interest_neighbours
from ragrec.retrieval.fusion import min_max

SOURCES = ("collaborative", "content", "popular")


@dataclass
class UserPool:
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


def gather(client: Elasticsearch, alias: str, profile: dict[str, float], seen: set[str],
           collaborative: dict[str, float], counts: dict[str, int], interests: int,
           per_interest: int, candidates: int) -> UserPool:
    """The pool and its source scores for one user. ``collaborative`` excludes ``seen``;
    ``counts``: clicks per document, most first."""
    rows = interest_neighbours(client, alias, profile, seen, interests, per_interest)
    top_cf = sorted(collaborative, key=lambda d: (-collaborative[d], d))[:candidates]
    top_popular = [d for d in counts if d not in seen][:per_interest]
    pool = list(dict.fromkeys([*rows, *top_cf, *top_popular]))
    return UserPool(rows, {
        "collaborative": {d: collaborative.get(d, 0.0) for d in pool},
        "content": {d: rows[d]["_score"] if d in rows else 0.0 for d in pool},
        "popular": {d: float(np.log1p(counts.get(d, 0))) for d in pool}})


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
