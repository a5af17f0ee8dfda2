"""The chunk index: BM25 text (English analyzer), a ``dense_vector``, keyword metadata."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ragrec.indexing.chunk_document import properties

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class VectorSettings:
    """HNSW parameters; ``int8`` quantises vectors in the graph (about 4x less memory)."""

    m: int = 16
    ef_construction: int = 100
    int8: bool = False
    similarity: str = "cosine"


def chunk_index_body(
    dims: int,
    model_version: str,
    vectors: VectorSettings = VectorSettings(),
    analyzer: str = "english",
    shards: int = 1,
    replicas: int = 0,
    extra_meta: dict | None = None,
) -> dict:
    """Settings, mappings and ``_meta`` for one physical chunk index."""
    return {
        "settings": {"number_of_shards": shards, "number_of_replicas": replicas},
        "mappings": {
            "dynamic": "strict",
            "_meta": {
                "ragrec": {
                    "schema": SCHEMA_VERSION,
                    "model_version": model_version,
                    "dims": dims,
                    "created_at": datetime.now(UTC).isoformat(),
                    **(extra_meta or {}),
                }
            },
            "properties": properties(analyzer, {
                "type": "dense_vector",
                "dims": dims,
                "index": True,
                "similarity": vectors.similarity,
                "index_options": {
                    "type": "int8_hnsw" if vectors.int8 else "hnsw",
                    "m": vectors.m,
                    "ef_construction": vectors.ef_construction,
                },
            }),
        },
    }


QUARANTINE_BODY = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "doc_id": {"type": "keyword"},
            "source_uri": {"type": "keyword"},
            "fingerprint": {"type": "keyword"},
            "stage": {"type": "keyword"},
            "reason": {"type": "keyword"},
            "detail": {"type": "text"},
            "quarantined_at": {"type": "date"},
        },
    },
}
