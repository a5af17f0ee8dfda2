"""Ranking over a chunk index: the BM25 and kNN legs, hybrid search by reciprocal rank
fusion (``search``), with the query bodies in ``queries`` and the pure fusion arithmetic in
``fusion``.

Queries are encoded by the model version recorded on the index behind the alias; an
encoder of another version is refused, because its vectors live in another space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from elasticsearch import Elasticsearch

from ragrec.embedding.base import Embedder
from ragrec.indexing.versions import index_meta
from ragrec.retrieval import fusion
from ragrec.retrieval.queries import bm25_query, knn_query

MODES = ("bm25", "dense", "hybrid")
SOURCE_FIELDS = ["doc_id", "chunk_no", "text", "title", "page", "source_uri", "model_version"]


class EncoderMismatch(RuntimeError):
    pass


@dataclass
class Hit:
    id: str
    score: float
    doc_id: str
    chunk_no: int
    text: str
    title: str = ""
    page: int | None = None
    source_uri: str = ""
    ranks: dict[str, int] = field(default_factory=dict)


def _hits(response) -> list[Hit]:
    return [
        Hit(id=h["_id"], score=float(h["_score"] or 0.0), doc_id=h["_source"]["doc_id"],
            chunk_no=h["_source"]["chunk_no"], text=h["_source"]["text"],
            title=h["_source"].get("title", ""), page=h["_source"].get("page"),
            source_uri=h["_source"].get("source_uri", ""))
        for h in response["hits"]["hits"]
    ]


def check_encoder(client: Elasticsearch, index: str, embedder: Embedder) -> None:
    meta = index_meta(client, index)
    recorded = meta.get("model_version")
    if recorded and recorded != embedder.model_version:
        raise EncoderMismatch(
            f"index {index!r} holds vectors of model {recorded!r}; the query encoder is "
            f"{embedder.model_version!r}"
        )


def bm25(client: Elasticsearch, index: str, query: str, k: int, filters=None) -> list[Hit]:
    response = client.search(index=index, size=k, source=SOURCE_FIELDS,
                             query=bm25_query(query, filters))
    return _hits(response)


def dense(client: Elasticsearch, index: str, vector, k: int, num_candidates: int | None = None,
          filters=None) -> list[Hit]:
    response = client.search(index=index, size=k, source=SOURCE_FIELDS,
                             knn=knn_query(vector, k, num_candidates, filters))
    return _hits(response)


def fuse_hits(rankings: dict[str, list[Hit]], k: int) -> list[Hit]:
    """The top ``k`` chunks by reciprocal rank fusion (``fusion.rrf``) of named rankings;
    each hit records its rank in every ranking that has it. Ties keep the first ranking's
    order."""
    scores = fusion.rrf([[hit.id for hit in hits] for hits in rankings.values()])
    fused: dict[str, Hit] = {}
    for name, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            fused.setdefault(hit.id, hit).ranks[name] = rank
    ordered = sorted(fused.values(), key=lambda h: scores[h.id], reverse=True)[:k]
    for hit in ordered:
        hit.score = scores[hit.id]
    return ordered


def search(client: Elasticsearch, index: str, query: str, mode: str = "hybrid", k: int = 10,
           embedder: Embedder | None = None, window: int = 100, filters=None) -> list[Hit]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if mode == "bm25":
        return bm25(client, index, query, k, filters)
    if embedder is None:
        raise ValueError(f"{mode} search needs a query encoder")
    check_encoder(client, index, embedder)
    result = embedder.embed([query])
    if result.errors:
        raise RuntimeError(f"query encoding failed: {result.errors[0]}")
    vector = result.vectors[0]
    if mode == "dense":
        return dense(client, index, vector, k, filters=filters)
    depth = max(window, k)
    return fuse_hits({"bm25": bm25(client, index, query, depth, filters),
                      "dense": dense(client, index, vector, depth, filters=filters)}, k)
