"""The chunk document: its fields and their Elasticsearch types, the ``_source`` one chunk is
indexed with, and the fields each reader asks back. Built here and nowhere else, so the
mapping, the writer and the readers cannot drift apart."""

from __future__ import annotations

import numpy as np

from ragrec.records import Chunk, SourceObject

# Every field but the vector (whose mapping depends on the model's dims and the HNSW
# settings); ``text`` and ``title`` are analysed with the index's analyzer.
FIELD_TYPES = {
    "doc_id": "keyword", "chunk_no": "integer", "chunk_count": "integer", "text": "text",
    "title": "text", "title_path": "keyword", "page": "integer", "token_count": "integer",
    "model_token_count": "integer", "content_hash": "keyword", "source_uri": "keyword",
    "source_fingerprint": "keyword", "source_sha256": "keyword", "last_modified": "date",
    "indexed_at": "date", "model_version": "keyword",
}
VECTOR = "vector"

# What each reader asks back.
RANKED = ["doc_id", "chunk_no", "text", "title", "page", "source_uri", "model_version"]
NEIGHBOURS = ["doc_id", "chunk_no", "title", "text", VECTOR, "source_uri"]
VECTORS = ["doc_id", VECTOR]
SUMMARY = ["doc_id", "title", "text", "source_uri"]
CATALOGUE = ["doc_id", "chunk_no", "title", "text", VECTOR, "content_hash", "last_modified"]
CHECKED = ["doc_id", "chunk_no", "token_count", "model_token_count", "model_version",
           "indexed_at", VECTOR]

for _fields in (RANKED, NEIGHBOURS, VECTORS, SUMMARY, CATALOGUE, CHECKED):
    assert set(_fields) <= set(FIELD_TYPES) | {VECTOR}, _fields


def properties(analyzer: str, vector_mapping: dict) -> dict:
    """The ``properties`` of the chunk index mapping."""
    mapped = {name: ({"type": kind, "analyzer": analyzer} if kind == "text" else {"type": kind})
              for name, kind in FIELD_TYPES.items()}
    return {**mapped, VECTOR: vector_mapping}


def chunk_source(obj: SourceObject, chunk: Chunk, chunk_count: int, source_sha256: str,
                 vector, model_version: str, indexed_at: str) -> dict:
    """The ``_source`` of one chunk of ``obj``."""
    return {
        "doc_id": obj.doc_id, "chunk_no": chunk.chunk_no, "chunk_count": chunk_count,
        "text": chunk.text, "title": " > ".join(chunk.title_path),
        "title_path": list(chunk.title_path), "page": chunk.page,
        "token_count": chunk.token_count, "model_token_count": chunk.model_token_count,
        "content_hash": chunk.content_hash, "source_uri": obj.uri,
        "source_fingerprint": obj.fingerprint, "source_sha256": source_sha256,
        "last_modified": obj.last_modified.isoformat(), "indexed_at": indexed_at,
        "model_version": model_version, VECTOR: vector,
    }


def document_vector(chunk_vectors) -> np.ndarray:
    """A document's vector: the mean of its chunks' vectors, normalised (what item-to-item
    recommendations, the feature table and AIRec's item embedding all use)."""
    mean = np.asarray(chunk_vectors, dtype=np.float32).mean(axis=0)
    return unit(mean)


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
