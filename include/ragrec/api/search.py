"""``/search``: BM25, dense kNN or hybrid (RRF or a convex combination) over the chunk index,
metadata filters, an optional cross-encoder rerank of the top ``rerank_top``, highlights.

Hits are chunks; each carries the scores that placed it (``bm25``, ``dense`` cosine,
``rerank``), so ``/ask`` can judge whether retrieval found anything that supports an answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

from elasticsearch import Elasticsearch
from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt

from ragrec import retrieval
from ragrec.api.es_limits import EsDateTime, KeywordPrefix, Page, RequestModel, Terms
from ragrec.indexing import versions
from ragrec.retrieval.fusion import convex, min_max, rrf
from ragrec.retrieval.queries import filter_clauses
from ragrec.serving.http_errors import BadRequest


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# A question or query: the pattern documents "not blank" for clients and fuzzers (the
# validator enforces it, with Python's idea of whitespace).
QueryText = Annotated[str, Field(min_length=1, max_length=2000,
                                 json_schema_extra={"pattern": r"\S"}),
                      AfterValidator(_not_blank)]


class SearchFilters(RequestModel):
    doc_id: Terms | None = Field(None, description="only these documents")
    title_path: Terms | None = Field(None, description="only chunks under these headings")
    source_prefix: KeywordPrefix | None = Field(
        None, description="source URI prefix, e.g. a folder (at most 1,000 UTF-8 bytes)")
    modified_after: EsDateTime | None = Field(None, description="ISO 8601; UTC offset within "
                                                                "+-18:00")
    modified_before: EsDateTime | None = Field(None, description="ISO 8601; UTC offset within "
                                                                 "+-18:00")
    page: Page | None = None


# Body fields are strict: JSON has true/false and numbers, so "stream": 0 or "k": "5" is a
# client mistake to report, not to guess at (the query-string forms parse text on purpose).
class SearchQuery(RequestModel):
    query: QueryText
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    fusion: Literal["rrf", "convex"] = "rrf"
    dense_weight: StrictFloat = Field(0.3, ge=0, le=1,
                                      description="convex fusion: weight of the dense score")
    k: StrictInt = Field(10, ge=1, le=50)
    rerank: StrictBool = Field(False, description="re-score the top rerank_top by the "
                                                  "cross-encoder")
    rerank_top: StrictInt = Field(50, ge=1, le=200)
    rerank_weight: StrictFloat = Field(1.0, ge=0, le=1,
                                       description="1: cross-encoder order; <1 blends in the "
                                                   "first stage")
    filters: SearchFilters = Field(default_factory=SearchFilters)
    highlight: StrictBool = True


@dataclass
class ChunkHit:
    id: str
    doc_id: str
    chunk_no: int
    title: str
    text: str
    source_uri: str
    page: int | None
    score: float = 0.0
    scores: dict = field(default_factory=dict)
    highlights: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _chunk(hit: retrieval.Hit) -> ChunkHit:
    return ChunkHit(id=hit.id, doc_id=hit.doc_id, chunk_no=hit.chunk_no, title=hit.title,
                    text=hit.text, source_uri=hit.source_uri, page=hit.page)


class Searcher:
    def __init__(self, client: Elasticsearch, models):
        self.client = client
        self.models = models

    def model_version(self, alias: str) -> str:
        return versions.index_meta(self.client, alias).get("model_version", "")

    def _bm25(self, alias, query, depth, filters):
        return [(_chunk(h), h.score) for h in retrieval.bm25(self.client, alias, query, depth,
                                                              filters)]

    def _dense(self, alias, vector, depth, filters):
        # ES's cosine score is (1 + cos) / 2; report the cosine itself.
        return [(_chunk(h), 2 * h.score - 1)
                for h in retrieval.dense(self.client, alias, vector, depth, filters=filters)]

    def search(self, alias: str, q: SearchQuery) -> dict:
        started = time.monotonic()
        filters = filter_clauses(q.filters)
        version = self.model_version(alias)
        depth = max(q.k, q.rerank_top if q.rerank else q.k, 50 if q.mode == "hybrid" else 0)
        legs: dict[str, list] = {}
        if q.mode in ("bm25", "hybrid"):
            legs["bm25"] = self._bm25(alias, q.query, depth, filters)
        if q.mode in ("dense", "hybrid"):
            vector = self.models.encode([q.query], version)[0]
            legs["dense"] = self._dense(alias, vector, depth, filters)
        chunks: dict[str, ChunkHit] = {}
        for name, hits in legs.items():
            for chunk, score in hits:
                chunks.setdefault(chunk.id, chunk).scores[name] = round(score, 6)
        if q.mode == "hybrid":
            bm25 = {c.id: s for c, s in legs["bm25"]}
            dense = {c.id: s for c, s in legs["dense"]}
            fused = (rrf([list(bm25), list(dense)]) if q.fusion == "rrf"
                     else convex(bm25, dense, q.dense_weight))
        else:
            fused = {c.id: s for c, s in legs[q.mode]}
        order = sorted(fused, key=lambda i: (-fused[i], i))
        for chunk_id in order:
            chunks[chunk_id].score = fused[chunk_id]
        reranked = False
        if q.rerank and order:
            head = order[:q.rerank_top]
            scores = self.models.rerank(q.query, [chunks[i].text for i in head], version)
            if scores is None:
                raise BadRequest(409, f"model version {version!r} of this index has no "
                                      "reranker; search without 'rerank'")
            cross = dict(zip(head, (float(s) for s in scores), strict=True))
            mixed = {i: q.rerank_weight * v for i, v in min_max(cross).items()}
            first = min_max({i: fused[i] for i in head})
            for chunk_id in head:
                chunks[chunk_id].scores["rerank"] = round(cross[chunk_id], 6)
                mixed[chunk_id] += (1 - q.rerank_weight) * first[chunk_id]
                chunks[chunk_id].score = mixed[chunk_id]
            order = sorted(head, key=lambda i: (-mixed[i], i)) + order[q.rerank_top:]
            reranked = True
        hits = [chunks[i] for i in order[:q.k]]
        if q.highlight and hits:
            self._highlight(alias, q.query, hits)
        return {"query": q.query, "mode": q.mode, "fusion": q.fusion if q.mode == "hybrid"
                else None, "reranked": reranked, "model_version": version, "index": alias,
                "took_ms": round((time.monotonic() - started) * 1000, 1),
                "hits": [h.to_dict() for h in hits]}

    def _highlight(self, alias: str, query: str, hits: list[ChunkHit]) -> None:
        """Fragments of each hit's text that match the query's terms (one request)."""
        response = self.client.search(
            index=alias, size=len(hits), source=False,
            query={"bool": {"filter": {"ids": {"values": [h.id for h in hits]}},
                            "should": {"match": {"text": query}}}},
            highlight={"fields": {"text": {"fragment_size": 160, "number_of_fragments": 2}},
                       "pre_tags": ["<mark>"], "post_tags": ["</mark>"],
                       "encoder": "html"})
        found = {h["_id"]: h.get("highlight", {}).get("text", [])
                 for h in response["hits"]["hits"]}
        for hit in hits:
            hit.highlights = found.get(hit.id, [])
