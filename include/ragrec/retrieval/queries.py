"""The Elasticsearch query bodies of the ranking legs, built here and nowhere else: BM25 over
a chunk's text and title, kNN over its vector, and the metadata filters both take."""

from __future__ import annotations

from collections.abc import Iterable

from ragrec.indexing.chunk_document import RANKED

BM25_FIELDS = ["text", "title^0.5"]
VECTOR_FIELD = "vector"
SOURCE_FIELDS = RANKED  # what a ranked chunk carries back (never its vector)


def bm25_query(query: str, filters: list[dict] | None = None) -> dict:
    """The ``query`` body: the text and (half-weighted) title, filtered without scoring."""
    return {"bool": {"must": {"multi_match": {"query": query, "fields": BM25_FIELDS}},
                     "filter": filters or []}}


def knn_query(vector, k: int, num_candidates: int | None = None,
              filters: list[dict] | dict | None = None, field: str = VECTOR_FIELD) -> dict:
    """The ``knn`` body: ``k`` nearest chunks among ``num_candidates`` per shard (at least
    100, or twice ``k``), the filters applied before the search (a pre-filter); ``field``:
    another dense vector (the feature table's ``rec_vector``)."""
    knn = {"field": field, "query_vector": [float(x) for x in vector], "k": k,
           "num_candidates": num_candidates or max(100, 2 * k)}
    if filters:
        knn["filter"] = filters
    return knn


def cosine_of(knn_score: float) -> float:
    """The cosine behind a ``knn`` hit's score on a cosine-similarity field (Elasticsearch
    scores it ``(1 + cosine) / 2``)."""
    return 2 * float(knn_score) - 1


def highlight_request(query: str, chunk_ids: list[str]) -> dict:
    """``query`` and ``highlight`` of one request for the fragments of these chunks' text
    that match the query's terms (HTML-escaped, matches in ``<mark>``)."""
    return {"query": {"bool": {"filter": {"ids": {"values": chunk_ids}},
                               "should": {"match": {"text": query}}}},
            "highlight": {"fields": {"text": {"fragment_size": 160, "number_of_fragments": 2}},
                          "pre_tags": ["<mark>"], "post_tags": ["</mark>"],
                          "encoder": "html"}}


def excluding_documents(doc_ids: Iterable[str]) -> dict:
    """A filter that leaves out every chunk of these documents."""
    return {"bool": {"must_not": {"terms": {"doc_id": sorted(doc_ids)}}}}


def filter_clauses(filters) -> list[dict]:
    """Filter clauses from a filters record (``doc_id``, ``title_path``, ``source_prefix``,
    ``page``, ``modified_after``, ``modified_before``; any may be None)."""
    clauses: list[dict] = []
    for name in ("doc_id", "title_path"):
        values = getattr(filters, name, None)
        if values:
            clauses.append({"terms": {name: values}})
    if getattr(filters, "source_prefix", None):
        clauses.append({"prefix": {"source_uri": filters.source_prefix}})
    if getattr(filters, "page", None) is not None:
        clauses.append({"term": {"page": filters.page}})
    bounds = {}
    if getattr(filters, "modified_after", None):
        bounds["gte"] = filters.modified_after.isoformat()
    if getattr(filters, "modified_before", None):
        bounds["lt"] = filters.modified_before.isoformat()
    if bounds:
        clauses.append({"range": {"last_modified": bounds}})
    return clauses
