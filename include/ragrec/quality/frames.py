"""The tables the suites read: one row per chunk, one row per indexed document."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from elasticsearch import Elasticsearch, helpers

from ragrec.indexing.chunk_document import CHECKED as CHUNK_FIELDS


def chunk_frame(rows: Iterable[dict]):
    """``rows``: chunk_id, doc_id, vector (array, list or None), token_count,
    model_token_count, model_version[, indexed_at]; adds the vector's dims, finiteness and
    norm and drops the vector itself."""
    import pandas as pd

    records = []
    for row in rows:
        vector = row.get("vector")
        array = None if vector is None else np.asarray(vector, dtype=np.float64)
        finite = bool(array is not None and array.size and np.isfinite(array).all())
        records.append({
            **{k: v for k, v in row.items() if k != "vector"},
            "vector_dims": 0 if array is None else int(array.size),
            "vector_finite": finite,
            "vector_norm": float(np.linalg.norm(array)) if finite else None,
        })
    columns = ["chunk_id", "doc_id", "token_count", "model_token_count", "model_version",
               "vector_dims", "vector_finite", "vector_norm"]
    frame = pd.DataFrame.from_records(records, columns=None if records else columns)
    return frame


def index_frames(client: Elasticsearch, alias: str):
    """(chunks, documents) of everything behind ``alias``; scanned, so any size works."""
    import pandas as pd

    rows = []
    for hit in helpers.scan(client, index=alias, _source=CHUNK_FIELDS, size=1000,
                            query={"query": {"match_all": {}}}):
        source = hit["_source"]
        rows.append({"chunk_id": hit["_id"], **{k: source.get(k) for k in CHUNK_FIELDS}})
    chunks = chunk_frame(rows)
    if chunks.empty:
        return chunks, pd.DataFrame({"doc_id": [], "indexed_at": []})
    chunks["indexed_at"] = pd.to_datetime(chunks["indexed_at"], utc=True)
    documents = chunks.groupby("doc_id", as_index=False)["indexed_at"].max()
    return chunks, documents


def document_frame(client: Elasticsearch, alias: str):
    """One row per indexed document (doc_id, chunks, newest indexed_at), read with a paged
    composite aggregation: no chunk bodies or vectors travel."""
    import pandas as pd

    rows, after = [], None
    while True:
        composite = {"size": 1000, "sources": [{"doc": {"terms": {"field": "doc_id"}}}]}
        if after:
            composite["after"] = after
        response = client.search(index=alias, size=0, aggs={"docs": {
            "composite": composite, "aggs": {"newest": {"max": {"field": "indexed_at"}}}}})
        agg = response["aggregations"]["docs"]
        for bucket in agg["buckets"]:
            rows.append({"doc_id": bucket["key"]["doc"], "chunks": bucket["doc_count"],
                         "indexed_at": bucket["newest"].get("value_as_string")})
        after = agg.get("after_key")
        if not after or not agg["buckets"]:
            break
    frame = pd.DataFrame(rows, columns=["doc_id", "chunks", "indexed_at"])
    frame["indexed_at"] = pd.to_datetime(frame["indexed_at"], utc=True)
    return frame
