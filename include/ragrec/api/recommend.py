"""Semantic recommendations on the chunk index (same vectors, same model as search).

* Item to item: the document's vector (normalised mean of its chunk vectors) -> kNN over
  chunks -> one entry per document (its best chunk), blended with the document's learned
  neighbours ("people who read this also read") once ``rec_train`` has run -> MMR, so the
  list is not five near-copies of one topic.
* User: each recent click weighs ``0.5 ** (age / half_life)``; the neighbours of the most
  recently clicked documents are the candidates (one kNN per interest, so two unrelated
  interests both count), scored by weighted similarity, fused by RRF with click
  popularity; clicked documents excluded; the custom reranker ranks the head (the user's
  recent titles as the query). A user without clicks gets the most clicked documents.
* User, once ``rec_train`` has learned collaborative neighbours (the feature table's
  ``neighbours``): the user's recency profile (newest click weighs most) scores the stored
  neighbours of the clicked documents; candidates from that, the content neighbours and
  popularity are blended by min-max scaled weights (``RecSettings.collaborative``,
  ``content``, ``popular``; chosen on MovieLens 100K's validation split), and the list's
  last ``cold_slots`` places go to the documents nobody had consumed when ``rec_train``
  last ran (``cold_users``) that are closest to the user's newest items in the
  recommendation tower's space (``rec_vector``, cosine at least ``cold_min_similarity``) -
  so new documents reach the users they suit.
* Everything the user consumed is excluded, not only the recent clicks the profile uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.api import events as event_log
from ragrec.indexing.chunk_document import NEIGHBOURS, SUMMARY, VECTORS
from ragrec.recs.cold_start import with_cold_slots
from ragrec.recs.interactions import recency_profile
from ragrec.recs.training import cold_candidates, collaborative_scores, neighbour_lists
from ragrec.retrieval.fusion import blend, min_max, rrf
from ragrec.retrieval.queries import excluding_documents, knn_query

FIELDS = NEIGHBOURS


class UnknownDocument(LookupError):
    pass


@dataclass(frozen=True)
class RecSettings:
    candidates: int = 100
    mmr_lambda: float = 0.7
    half_life_days: float = 7.0
    profile_clicks: int = 50
    interests: int = 5  # most recent clicked documents whose neighbours are candidates
    per_interest: int = 30  # neighbours per interest without the learned model
    blend_per_interest: int = 60  # ... beside it (MovieLens validation, bench.rec_served --tune)
    popularity: bool = True  # fuse the interest ranking with click popularity (RRF)
    rerank_weight: float = 0.5
    profile_half_life: float | None = 3.0  # in clicked documents, newest first
    collaborative: float = 1.0  # blend weights of the min-max scaled sources
    content: float = 0.4
    popular: float = 0.05
    also_read: float = 1.0  # /recommend/item: the learned neighbours' weight beside content
    cold_slots: int = 1  # places of k kept for documents nobody has consumed
    cold_users: int = 0  # ... "nobody": at most this many consumers at the last rec_train
    cold_min_similarity: float = 0.6  # ... tower cosine to the newest items (validation)


def _normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def doc_vectors(client: Elasticsearch, alias: str, doc_ids: list[str]) -> dict[str, np.ndarray]:
    """Normalised mean chunk vector per document."""
    if not doc_ids:
        return {}
    response = client.search(index=alias, size=10_000, source=VECTORS,
                             query={"terms": {"doc_id": doc_ids}})
    grouped: dict[str, list] = {}
    for hit in response["hits"]["hits"]:
        grouped.setdefault(hit["_source"]["doc_id"], []).append(hit["_source"]["vector"])
    return {d: _normalise(np.asarray(v, dtype=np.float32).mean(axis=0))
            for d, v in grouped.items()}


def _first_chunks(client: Elasticsearch, alias: str, doc_ids: list[str]) -> dict[str, dict]:
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


def _titles(client: Elasticsearch, alias: str, doc_ids: list[str]) -> dict[str, str]:
    return {d: row["title"] for d, row in _first_chunks(client, alias, doc_ids).items()}


def _candidates(client: Elasticsearch, alias: str, vector: np.ndarray, exclude: set[str],
                count: int) -> list[dict]:
    """Best chunk per document, by cosine to ``vector``, excluding ``exclude``."""
    return _candidates_of(client, alias, [vector], exclude, count)[0]


def _candidates_of(client: Elasticsearch, alias: str, vectors: list[np.ndarray],
                   exclude: set[str], count: int, with_vectors: bool = True) -> list[list[dict]]:
    """``_candidates`` for several vectors in one round trip (``msearch``); without
    ``with_vectors`` the rows carry no ``_vector`` (a smaller answer)."""
    if not vectors:
        return []
    source = FIELDS if with_vectors else [*SUMMARY, "chunk_no"]
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
                    "similarity": round(2 * float(hit["_score"]) - 1, 6)}
                if with_vectors:
                    best[row["doc_id"]]["_vector"] = np.asarray(row["vector"], dtype=np.float32)
        lists.append(list(best.values()))
    return lists


def mmr(candidates: list[dict], k: int, lam: float) -> list[dict]:
    """Maximal marginal relevance: relevance to the query (``_relevance``, else the
    similarity) vs similarity to what is chosen."""
    chosen: list[dict] = []
    pool = list(candidates)
    while pool and len(chosen) < k:
        def gain(c):
            redundancy = max((float(c["_vector"] @ s["_vector"]) for s in chosen), default=0.0)
            return lam * c.get("_relevance", c["similarity"]) - (1 - lam) * redundancy
        best = max(pool, key=gain)
        pool.remove(best)
        chosen.append(best)
    return chosen


def _public(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


def similar_items(client: Elasticsearch, alias: str, doc_id: str, k: int = 5,
                  settings: RecSettings = RecSettings()) -> list[dict]:
    """"People who read this also read" (the learned neighbours, once ``rec_train`` has
    run) blended with the content neighbours - min-max scaled, weighted by ``also_read``
    and ``content`` - one entry per document, diversified by MMR. A document nobody has
    read yet gets its content neighbours."""
    vector = doc_vectors(client, alias, [doc_id]).get(doc_id)
    if vector is None:
        raise UnknownDocument(f"no document {doc_id!r} in {alias}")
    pool = {c["doc_id"]: c for c in _candidates(client, alias, vector, {doc_id},
                                                 settings.candidates)}
    also = dict(neighbour_lists(client, alias, [doc_id]).get(doc_id, [])[:settings.candidates])
    also.pop(doc_id, None)
    if also:
        missing = [d for d in also if d not in pool]
        vectors = doc_vectors(client, alias, missing)
        for d, row in _first_chunks(client, alias, [d for d in missing if d in vectors]).items():
            pool[d] = {**row, "similarity": round(float(vectors[d] @ vector), 6),
                       "_vector": vectors[d]}
        scaled = min_max({d: also.get(d, 0.0) for d in pool})
        content = min_max({d: c["similarity"] for d, c in pool.items()})
        for d, c in pool.items():
            c["also_read"] = round(scaled[d], 6) if d in also else None
            c["_relevance"] = settings.also_read * scaled[d] + settings.content * content[d]
    return _public(mmr(list(pool.values()), k, settings.mmr_lambda))


def click_weights(history: list[dict], now: datetime, half_life_days: float) -> dict:
    """doc_id -> summed ``0.5 ** (age / half_life)`` of the user's clicks on it."""
    weights: dict[str, float] = {}
    for event in history:
        age = (now - datetime.fromisoformat(event["ts"])).total_seconds() / 86400
        weights[event["doc_id"]] = (weights.get(event["doc_id"], 0.0)
                                    + 0.5 ** (max(age, 0.0) / half_life_days))
    return weights


def user_profile(history: list[dict], vectors: dict[str, np.ndarray], now: datetime,
                 half_life_days: float) -> np.ndarray | None:
    """One vector for the user: the click-weighted mean of the clicked documents' vectors."""
    total = None
    for doc_id, weight in click_weights(history, now, half_life_days).items():
        vector = vectors.get(doc_id)
        if vector is not None:
            total = weight * vector if total is None else total + weight * vector
    return None if total is None else _normalise(total)


def interest_neighbours(client: Elasticsearch, alias: str, weights: dict[str, float],
                        seen: set[str], settings: RecSettings,
                        per_interest: int | None = None) -> dict[str, dict]:
    """Multi-interest candidates: the neighbours of each of the ``interests`` most recently
    clicked documents (one ``msearch``), scored by the click-weighted sum of their
    similarities (a mean vector of two unrelated interests points at neither)."""
    recent = sorted(weights, key=lambda d: -weights[d])[:settings.interests]  # ties: newest
    vectors = doc_vectors(client, alias, recent)
    recent = [d for d in recent if d in vectors]
    pool: dict[str, dict] = {}
    lists = _candidates_of(client, alias, [vectors[d] for d in recent], seen,
                           per_interest or settings.per_interest, with_vectors=False)
    for doc_id, rows in zip(recent, lists, strict=True):
        for row in rows:
            entry = pool.setdefault(row["doc_id"], {**row, "_score": 0.0})
            entry["_score"] += weights[doc_id] * max(row["similarity"], 0.0)
            entry["similarity"] = max(entry["similarity"], row["similarity"])
    return pool


def _blend_sources(client: Elasticsearch, alias: str, pool: dict[str, dict],
                   collaborative: dict[str, float], counts: dict[str, int], seen: set[str],
                   settings: RecSettings) -> dict[str, float]:
    """Adds the collaborative and popular candidates to ``pool`` and returns every
    candidate's blended score."""
    top_cf = sorted(collaborative, key=lambda d: (-collaborative[d], d))[:settings.candidates]
    top_popular = [d for d in counts if d not in seen][:settings.blend_per_interest]
    missing = [d for d in dict.fromkeys(top_cf + top_popular) if d not in pool]
    for doc_id, row in _first_chunks(client, alias, missing).items():
        pool[doc_id] = {**row, "_score": 0.0}
    sources = [(settings.collaborative, {d: collaborative.get(d, 0.0) for d in pool}),
               (settings.content, {d: pool[d]["_score"] for d in pool}),
               (settings.popular, {d: float(np.log1p(counts.get(d, 0))) for d in pool})]
    fused = dict.fromkeys(pool, 0.0)
    for weight, values in sources:
        if weight:
            for doc_id, value in min_max(values).items():
                fused[doc_id] += weight * value
    return fused


def for_user(client: Elasticsearch, alias: str, user_id: str, models, version: str,
             k: int = 10, settings: RecSettings = RecSettings(),
             now: datetime | None = None) -> dict:
    """Candidates from the user's interests (neighbours of recent clicks) - blended with
    the learned collaborative neighbours and popularity when ``rec_train`` has run, else
    fused by RRF with popularity - then ranked by the cross-encoder when the version has
    one."""
    now = now or datetime.now(UTC)
    history, consumed = event_log.user_history(client, alias, user_id, settings.profile_clicks)
    seen = consumed | {e["doc_id"] for e in history}
    counts = event_log.click_counts(client, alias, 200)
    popular = [d for d in counts if d not in seen]
    profile = recency_profile([e["doc_id"] for e in reversed(history)],
                              settings.profile_half_life)
    collaborative = {d: v for d, v in collaborative_scores(client, alias, profile).items()
                     if d not in seen}
    # Blended with the learned neighbours, the content candidates are scored from the same
    # recency profile (as tuned); alone, from the calendar-decayed clicks.
    weights = profile if collaborative else click_weights(history, now,
                                                          settings.half_life_days)
    pool = interest_neighbours(client, alias, weights, seen, settings,
                               settings.blend_per_interest if collaborative else None)
    if not pool and not collaborative:
        titles = _titles(client, alias, popular[:k])
        return {"user_id": user_id, "strategy": "popular", "reranked": False,
                "items": [{"doc_id": d, "title": titles.get(d, d)} for d in popular[:k]
                          if d in titles]}
    strategy = "interests"
    if collaborative:
        strategy = "collaborative"
        fused = _blend_sources(client, alias, pool, collaborative, counts, seen, settings)
    elif settings.popularity:
        by_interest = sorted(pool, key=lambda d: (-pool[d]["_score"], d))
        # Popular documents are candidates too, not only a tie-breaker among neighbours.
        top_popular = popular[:settings.per_interest]
        for doc_id, row in _first_chunks(client, alias,
                                         [d for d in top_popular if d not in pool]).items():
            pool[doc_id] = {**row, "_score": 0.0}
        fused = rrf([by_interest, [d for d in top_popular if d in pool]])
    else:
        fused = {d: pool[d]["_score"] for d in pool}
    ranked = sorted(pool.values(), key=lambda c: (-fused[c["doc_id"]], c["doc_id"]))
    head = ranked[:max(k * 3, 20)]
    scores = None
    if models is not None:  # no models: interests and popularity alone
        recent = list(dict.fromkeys(e["doc_id"] for e in history))[:3]
        titles = _titles(client, alias, recent)
        interest = "; ".join(titles.get(d, d) for d in recent)
        scores = models.rerank(interest, [c["title"] + ". " + c["excerpt"] for c in head],
                               version)
    if scores is not None:
        cross = {c["doc_id"]: float(s) for c, s in zip(head, scores, strict=True)}
        mixed = blend({c["doc_id"]: fused[c["doc_id"]] for c in head}, cross,
                      settings.rerank_weight)
        normalised = min_max(cross)
        for c in head:
            c["rerank"] = round(normalised[c["doc_id"]], 6)
            c["_score"] = mixed[c["doc_id"]]
        head.sort(key=lambda c: -c["_score"])
    chosen = head[:k]
    if strategy == "collaborative" and settings.cold_slots:
        chosen = _with_cold(client, alias, pool, head, profile, seen, k, settings)
    return {"user_id": user_id, "strategy": strategy, "reranked": scores is not None,
            "history": len(history), "items": _public(chosen)}


def _with_cold(client: Elasticsearch, alias: str, pool: dict[str, dict], head: list[dict],
               profile: dict[str, float], seen: set[str], k: int,
               settings: RecSettings) -> list[dict]:
    """``head``'s top ``k`` with ``cold_slots`` places for the documents nobody had consumed
    at the last ``rec_train``, closest to the user's newest items in the recommendation
    tower's space (``ragrec.recs.cold_start``, ``training.cold_candidates``)."""
    shown = {c["doc_id"] for c in head[:k - settings.cold_slots]}
    found = cold_candidates(client, alias, profile, seen | shown, settings.cold_users,
                            settings.cold_min_similarity, settings.cold_slots,
                            settings.interests)
    cold = [d for d, _ in found]
    rows = {c["doc_id"]: c for c in head}
    rows.update({d: pool[d] for d in cold if d in pool})
    rows.update(_first_chunks(client, alias, [d for d in cold if d not in rows]))
    order = with_cold_slots([c["doc_id"] for c in head], [d for d in cold if d in rows], k,
                            settings.cold_slots)
    return [rows[d] for d in order]
