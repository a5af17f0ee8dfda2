"""The chunk index: BM25 text (English analyzer), a ``dense_vector``, keyword metadata."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ragrec.config import IndexLayoutSettings
from ragrec.indexing.chunk_document import properties

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class VectorSettings:
    """HNSW parameters; ``int8`` quantises vectors in the graph (about 4x less memory)."""

    m: int = 16
    ef_construction: int = 100
    int8: bool = False
    similarity: str = "cosine"


def index_settings(layout: IndexLayoutSettings | None = None) -> dict:
    """Shards and replicas of an index ragrec creates (``RAGREC_INDEX_SHARDS`` /
    ``RAGREC_INDEX_REPLICAS``): every index, chunks, quarantine, events, conversations and
    the recommendation feature table alike."""
    return (layout or IndexLayoutSettings.from_env()).index_settings()


def chunk_index_body(
    dims: int,
    model_version: str,
    vectors: VectorSettings = VectorSettings(),
    analyzer: str = "english",
    layout: IndexLayoutSettings | None = None,
    extra_meta: dict | None = None,
) -> dict:
    """Settings, mappings and ``_meta`` for one physical chunk index."""
    return {
        "settings": index_settings(layout),
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


def quarantine_body() -> dict:
    return {"settings": index_settings(), "mappings": QUARANTINE_MAPPINGS}


QUARANTINE_MAPPINGS = {
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
}
