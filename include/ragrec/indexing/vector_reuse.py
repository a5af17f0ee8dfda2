"""Reusing vectors the index already holds: a chunk whose embedded text (title path + text,
``Chunk.content_hash``) is unchanged gets the vector stored for it instead of a new encoding.

Encoding is the expensive step of ingestion, and many "changes" leave most chunks as they
were: a file copied or touched (new mtime, same bytes), an edit to one section of a long
document, a nightly rebuild into a new index version with the same model, a rollout of a
version that trained only its query side. Vectors are only reused from an index whose
document encoder is the same (``document_version`` in its meta, else its model version:
``embedding.base.document_version``) with the same dimensions, so they are the vectors the
encoder would give; ``--reencode`` turns reuse off.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.indexing import versions
from ragrec.indexing.doc_state import DocState
from ragrec.records import chunk_id

MGET_BATCH = 500


class VectorReuse:
    """Stored vectors of one index, looked up by document and chunk text hash."""

    def __init__(self, client: Elasticsearch, index: str):
        self.client = client
        self.index = index

    @classmethod
    def from_live(cls, client: Elasticsearch, live: str | None,
                  document_version: str, dims: int) -> VectorReuse | None:
        """Reuse from the live index when its documents were encoded by this document
        encoder (``document_version``), else none."""
        if not live:
            return None
        meta = versions.index_meta(client, live)
        if versions.document_version_held(meta) != document_version or meta.get("dims") != dims:
            return None
        return cls(client, live)

    def lookup(self, states: Iterable[DocState]) -> dict[str, np.ndarray]:
        """content_hash -> stored vector for every chunk the index holds for the documents
        of ``states`` (what the live index holds for them)."""
        ids = list(dict.fromkeys(chunk_id(state.doc_id, n) for state in states
                                 for n in range(state.max_chunk_no + 1)))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), MGET_BATCH):
            response = self.client.mget(index=self.index, ids=ids[start:start + MGET_BATCH],
                                        source_includes=["content_hash", "vector"])
            for doc in response["docs"]:
                source = doc.get("_source") if doc.get("found") else None
                vector = source.get("vector") if source else None
                if vector and source.get("content_hash"):
                    array = np.asarray(vector, dtype=np.float32)
                    if np.isfinite(array).all():
                        found[source["content_hash"]] = array
        return found
