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

from datetime import UTC, datetime, timedelta

from elasticsearch import Elasticsearch

from ragrec.recs import blend as sources
from ragrec.recs import events as event_log
from ragrec.recs.cold_start import cold_candidates, with_cold_slots
from ragrec.recs.content import click_weights, doc_vectors, first_chunks, interest_neighbours
from ragrec.recs.interactions import recency_profile
from ragrec.recs.item_table import neighbour_lists
from ragrec.recs.ranker import candidate_features
from ragrec.recs.setup import RecSettings, served_settings
from ragrec.retrieval.fusion import blend, min_max, rrf


class UnknownDocument(LookupError):
    pass


def _titles(client: Elasticsearch, alias: str, doc_ids: list[str]) -> dict[str, str]:
    return {d: row["title"] for d, row in first_chunks(client, alias, doc_ids).items()}


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
                  settings: RecSettings | None = None) -> list[dict]:
    """"People who read this also read" (the learned neighbours, once ``rec_train`` has
    run) with the content neighbours and popularity, combined by the blend ``rec_train``
    tuned on this deployment's log (``recs.blend.gather_item``, ``fuse``), one entry per
    document, diversified by MMR. A document nobody has read yet gets its content
    neighbours."""
    settings = settings or served_settings(client, alias)
    vector = doc_vectors(client, alias, [doc_id]).get(doc_id)
    if vector is None:
        raise UnknownDocument(f"no document {doc_id!r} in {alias}")
    also = dict(neighbour_lists(client, alias, [doc_id]).get(doc_id, [])[:settings.candidates])
    also.pop(doc_id, None)
    counts = event_log.click_counts(client, alias, sources.POPULAR_COUNTS) if also else {}
    pool = sources.gather_item(client, alias, doc_id, vector, also, counts,
                               settings.candidates)
    if also:
        fused = sources.fuse(pool.sources, settings.weights())
        scaled = min_max(pool.sources["collaborative"])
        for d, c in pool.rows.items():
            c["also_read"] = round(scaled[d], 6) if d in also else None
            c["_relevance"] = fused[d]
    return _public(mmr(list(pool.rows.values()), k, settings.mmr_lambda))


def for_user(client: Elasticsearch, alias: str, user_id: str, models, version: str,
             k: int = 10, settings: RecSettings | None = None,
             now: datetime | None = None) -> dict:
    """Candidates from the user's interests (neighbours of recent clicks) - blended with
    the learned collaborative neighbours and popularity when ``rec_train`` has run
    (``recs.blend``, with the weights it tuned on this deployment's log unless ``settings``
    are given; scored by the learned ranker instead when it installed one and ``models``
    are given), else fused by RRF with popularity - then ranked by the cross-encoder when
    the version has one."""
    now = now or datetime.now(UTC)
    settings = settings or served_settings(client, alias)
    history, consumed = event_log.user_history(client, alias, user_id, settings.profile_clicks)
    seen = consumed | {e["doc_id"] for e in history}
    counts = event_log.click_counts(client, alias, sources.POPULAR_COUNTS)
    popular = [d for d in counts if d not in seen]
    profile = recency_profile([e["doc_id"] for e in reversed(history)],
                              settings.profile_half_life)
    collaborative = {d: v for d, v in sources.collaborative_scores(client, alias,
                                                                     profile).items()
                     if d not in seen}
    ranked_by = "blend"
    if collaborative:
        strategy = "collaborative"
        gathered = sources.gather(client, alias, profile, seen, collaborative, counts,
                                  settings.interests, settings.blend_per_interest,
                                  settings.candidates)
        pool = gathered.rows
        missing = [d for d in gathered.doc_ids if d not in pool]
        for doc_id, row in first_chunks(client, alias, missing).items():
            pool[doc_id] = {**row, "_score": 0.0}
        gathered.keep(pool)
        if settings.ranker and models is not None:
            fused = _learned(client, alias, gathered, len(seen), models, settings, now)
            ranked_by = "ranker"
        else:
            fused = sources.fuse(gathered.sources, settings.weights())
    else:
        # Alone, the content candidates are scored from the calendar-decayed clicks.
        weights = click_weights(history, now, settings.half_life_days)
        pool = interest_neighbours(client, alias, weights, seen, settings.interests,
                                   settings.per_interest)
        if not pool:
            titles = _titles(client, alias, popular[:k])
            return {"user_id": user_id, "strategy": "popular", "reranked": False,
                    "items": [{"doc_id": d, "title": titles.get(d, d)} for d in popular[:k]
                              if d in titles]}
        strategy = "interests"
        if settings.popularity:
            by_interest = sorted(pool, key=lambda d: (-pool[d]["_score"], d))
            # Popular documents are candidates too, not only a tie-breaker among neighbours.
            top_popular = popular[:settings.per_interest]
            for doc_id, row in first_chunks(client, alias,
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
    return {"user_id": user_id, "strategy": strategy, "ranked_by": ranked_by,
            "ranker": settings.ranker if ranked_by == "ranker" else None,
            "reranked": scores is not None, "history": len(history), "items": _public(chosen)}


def _learned(client: Elasticsearch, alias: str, gathered: sources.Pool, history: int,
             models, settings: RecSettings, now: datetime) -> dict[str, float]:
    """The pool scored by the learned ranker (``recs.ranker``) through the model server's
    ``/rank`` - the route AIRec's custom ranker calls - or in process without one."""
    ids = gathered.doc_ids
    recent = event_log.recent_counts(client, alias, ids,
                                     now - timedelta(days=settings.recent_days))
    rows = candidate_features(gathered.sources, ids, recent)
    scores = models.rank(settings.ranker, history, list(zip(ids, rows, strict=True)))
    return {d: float(v) for d, v in zip(ids, scores, strict=True)}


def _with_cold(client: Elasticsearch, alias: str, pool: dict[str, dict], head: list[dict],
               profile: dict[str, float], seen: set[str], k: int,
               settings: RecSettings) -> list[dict]:
    """``head``'s top ``k`` with ``cold_slots`` places for the documents nobody had consumed
    at the last ``rec_train``, closest to the user's newest items in the recommendation
    tower's space (``ragrec.recs.cold_start``)."""
    shown = {c["doc_id"] for c in head[:k - settings.cold_slots]}
    found = cold_candidates(client, alias, profile, seen | shown, settings.cold_users,
                            settings.cold_min_similarity, settings.cold_slots,
                            settings.interests)
    cold = [d for d, _ in found]
    rows = {c["doc_id"]: c for c in head}
    rows.update({d: pool[d] for d in cold if d in pool})
    rows.update(first_chunks(client, alias, [d for d in cold if d not in rows]))
    order = with_cold_slots([c["doc_id"] for c in head], [d for d in cold if d in rows], k,
                            settings.cold_slots)
    return [rows[d] for d in order]
