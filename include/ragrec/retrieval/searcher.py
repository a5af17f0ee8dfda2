"""The one ranking path: ``Searcher.search(alias, query, spec)``.

1. ``legs``: the BM25 and/or kNN chunk hits (``spec.depth`` each), the query encoded by the
   model version recorded on the index (``models.encode(texts, version)``);
2. ``first_stage``: one leg's order, or the legs fused (RRF, or a convex blend of
   normalised scores), ties broken by chunk id;
3. ``rerank``: the top ``spec.rerank_top`` re-scored by that version's cross-encoder and
   blended with the first stage (``spec.rerank_weight``); the tail keeps its order.

The API, ``ragrec search``, ``ragrec eval``, the golden-set gate and ``quality_monitor`` all
rank here; evaluation collapses the same chunk hits to documents afterwards.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from elasticsearch import Elasticsearch

from ragrec.indexing.versions import index_meta
from ragrec.retrieval import fusion
from ragrec.retrieval.queries import SOURCE_FIELDS, bm25_query, highlight_request, knn_query
from ragrec.retrieval.spec import SearchSpec


class EncoderMismatch(RuntimeError):
    """The query encoder is not the model whose vectors the index holds."""


class NoReranker(RuntimeError):
    """The spec asks for a rerank and the index's model version has no cross-encoder."""


class QueryModels(Protocol):
    """What ranking needs from the models: vectors and cross-encoder scores of a version
    (``rerank`` answers None when that version has no cross-encoder)."""

    def encode(self, texts: list[str], version: str, role: str = "query"): ...

    def rerank(self, query: str, texts: list[str], version: str): ...


@dataclass
class Hit:
    """A chunk in a ranking: ``score`` placed it; ``scores`` and ``ranks`` hold what each
    leg (``bm25``, ``dense`` as a cosine, ``rerank``) gave it."""

    id: str
    doc_id: str
    chunk_no: int
    text: str
    title: str = ""
    page: int | None = None
    source_uri: str = ""
    score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    highlights: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Ranking:
    query: str
    index: str
    model_version: str
    spec: SearchSpec
    hits: list[Hit]
    took_ms: float = 0.0

    def to_dict(self) -> dict:
        """The answer of ``/search`` and ``ragrec search --json``."""
        spec = self.spec
        return {"query": self.query, "mode": spec.mode,
                "fusion": spec.fusion if spec.mode == "hybrid" else None,
                "reranked": spec.reranks and bool(self.hits), "spec": spec.to_dict(),
                "model_version": self.model_version, "index": self.index,
                "took_ms": self.took_ms,
                "hits": [{k: v for k, v in h.to_dict().items() if k != "ranks"}
                         for h in self.hits]}


def _leg(response, name: str, rescale=None) -> list[Hit]:
    hits = []
    for rank, h in enumerate(response["hits"]["hits"], start=1):
        source = h["_source"]
        score = float(h["_score"] or 0.0)
        score = rescale(score) if rescale else score
        hits.append(Hit(id=h["_id"], doc_id=source["doc_id"], chunk_no=source["chunk_no"],
                        text=source["text"], title=source.get("title", ""),
                        page=source.get("page"), source_uri=source.get("source_uri", ""),
                        score=score, scores={name: round(score, 6)}, ranks={name: rank}))
    return hits


def _cosine(es_score: float) -> float:
    # Elasticsearch scores a cosine kNN match (1 + cos) / 2; the cosine itself is reported.
    return 2 * es_score - 1


def bm25(client: Elasticsearch, index: str, query: str, k: int,
         filters: list[dict] | None = None) -> list[Hit]:
    """The BM25 leg: the top ``k`` chunks by text and title."""
    response = client.search(index=index, size=k, source=SOURCE_FIELDS,
                             query=bm25_query(query, filters))
    return _leg(response, "bm25")


def dense(client: Elasticsearch, index: str, vector, k: int,
          filters: list[dict] | None = None) -> list[Hit]:
    """The kNN leg: the ``k`` chunks nearest ``vector``, scored by their cosine."""
    response = client.search(index=index, size=k, source=SOURCE_FIELDS,
                             knn=knn_query(vector, k, filters=filters))
    return _leg(response, "dense", _cosine)


def first_stage(legs: dict[str, list[Hit]], spec: SearchSpec) -> list[Hit]:
    """The legs' hits in first-stage order (fresh copies, so one set of legs can be ranked
    under several specs)."""
    merged: dict[str, Hit] = {}
    for hits in legs.values():
        for hit in hits:
            if hit.id in merged:
                merged[hit.id].scores.update(hit.scores)
                merged[hit.id].ranks.update(hit.ranks)
            else:
                merged[hit.id] = replace(hit, scores=dict(hit.scores), ranks=dict(hit.ranks),
                                         highlights=[])
    if spec.mode == "hybrid":
        bm25 = {h.id: h.score for h in legs["bm25"]}
        dense = {h.id: h.score for h in legs["dense"]}
        scores = (fusion.rrf([list(bm25), list(dense)]) if spec.fusion == "rrf"
                  else fusion.convex(bm25, dense, spec.dense_weight))
    else:
        scores = {h.id: h.score for h in legs[spec.mode]}
    ordered = []
    for chunk_id in fusion.ranked(scores):
        hit = merged[chunk_id]
        hit.score = scores[chunk_id]
        ordered.append(hit)
    return ordered


def blend(hits: list[Hit], cross: dict[str, float], weight: float) -> list[Hit]:
    """The reranked head (the hits ``cross`` scores) re-ordered by the blend, then the tail."""
    head = [h for h in hits if h.id in cross]
    mixed = fusion.blend({h.id: h.score for h in head}, cross, weight)
    for hit in head:
        hit.scores["rerank"] = round(cross[hit.id], 6)
        hit.score = mixed[hit.id]
    by_id = {h.id: h for h in head}
    return [by_id[i] for i in fusion.ranked(mixed)] + [h for h in hits if h.id not in cross]


class Searcher:
    def __init__(self, client: Elasticsearch, models: QueryModels | None = None):
        self.client = client
        self.models = models

    def model_version(self, alias: str) -> str:
        return index_meta(self.client, alias).get("model_version", "")

    def served(self, alias: str) -> tuple[str, SearchSpec]:
        """The model version of the index behind ``alias`` and the spec it serves (the one
        it was gated with at go-live; the default spec without one)."""
        meta = index_meta(self.client, alias)
        return meta.get("model_version", ""), SearchSpec.recorded(meta)

    def legs(self, alias: str, query: str, spec: SearchSpec, version: str,
             filters: list[dict] | None = None) -> dict[str, list[Hit]]:
        legs: dict[str, list[Hit]] = {}
        if spec.mode in ("bm25", "hybrid"):
            legs["bm25"] = bm25(self.client, alias, query, spec.depth, filters)
        if spec.mode in ("dense", "hybrid"):
            if self.models is None:
                raise ValueError(f"{spec.mode} search needs a query encoder")
            vector = self.models.encode([query], version)[0]
            legs["dense"] = dense(self.client, alias, vector, spec.depth, filters)
        return legs

    def rank(self, query: str, legs: dict[str, list[Hit]], spec: SearchSpec, version: str,
             cross_cache: dict[str, float] | None = None) -> list[Hit]:
        """First stage, then the rerank blend. ``cross_cache`` (chunk id -> cross-encoder
        score) spares re-scoring when one query is ranked under several blend weights."""
        hits = first_stage(legs, spec)
        if not spec.reranks or not hits:
            return hits
        head = hits[: spec.rerank_top]
        cache = {} if cross_cache is None else cross_cache
        todo = [h for h in head if h.id not in cache]
        if todo:
            scores = self.models.rerank(query, [h.text for h in todo], version) \
                if self.models is not None else None
            if scores is None:
                raise NoReranker(f"model version {version!r} of this index has no reranker; "
                                 "search without rerank")
            cache.update(zip((h.id for h in todo), map(float, scores), strict=True))
        return blend(hits, {h.id: cache[h.id] for h in head}, spec.rerank_weight)

    def search(self, alias: str, query: str, spec: SearchSpec | None = None,
               k: int | None = 10, filters: list[dict] | None = None,
               version: str | None = None) -> Ranking:
        """The top ``k`` chunks (``None``: every ranked chunk) for ``query`` under ``spec``
        (``None``: the spec the index serves)."""
        started = time.monotonic()
        if version is None or spec is None:
            recorded_version, served = self.served(alias)
            version = recorded_version if version is None else version
            spec = served if spec is None else spec
        hits = self.rank(query, self.legs(alias, query, spec, version, filters), spec, version)
        return Ranking(query, alias, version, spec, hits if k is None else hits[:k],
                       round((time.monotonic() - started) * 1000, 1))

    def highlight(self, alias: str, query: str, hits: list[Hit]) -> None:
        """Fragments of each hit's text that match the query's terms (one request)."""
        if not hits:
            return
        response = self.client.search(index=alias, size=len(hits), source=False,
                                      **highlight_request(query, [h.id for h in hits]))
        found = {h["_id"]: h.get("highlight", {}).get("text", [])
                 for h in response["hits"]["hits"]}
        for hit in hits:
            hit.highlights = found.get(hit.id, [])


class PinnedModels:
    """Given models (an embedder, optionally a cross-encoder, and the query encoder of a
    version that has one) as ``QueryModels``: ranking an index of another model version
    with them is refused (``EncoderMismatch``)."""

    def __init__(self, embedder=None, reranker=None, query_embedder=None):
        self.embedder = embedder
        self.reranker = reranker
        self.query_embedder = query_embedder

    def encode(self, texts: list[str], version: str, role: str = "query"):
        if self.embedder is None:
            raise ValueError("this search needs a query encoder")
        if version and version != self.embedder.model_version:
            raise EncoderMismatch(f"the index holds vectors of model {version!r}; the query "
                                  f"encoder is {self.embedder.model_version!r}")
        encoder = self.query_embedder if role == "query" and self.query_embedder \
            else self.embedder
        result = encoder.embed(texts, role=role)
        if result.errors:
            raise RuntimeError(f"query encoding failed: {result.errors[0]}")
        return result.vectors

    def rerank(self, query: str, texts: list[str], version: str):
        return None if self.reranker is None else self.reranker.score(query, texts)
