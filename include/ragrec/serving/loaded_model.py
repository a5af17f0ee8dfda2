"""One model version in memory: the bi-encoder (ONNX Runtime by default, or torch), the
query encoder when the version has one (queries asked for with ``input_type: "query"``), its
tokenizer for input limits, and the cross-encoder reranker when the version has one (on the
same runtime)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragrec.config import ServeModelSettings
from ragrec.models.store import ModelLayout
from ragrec.models.uris import load_layout

SERVE_BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    dims: int
    max_input_tokens: int
    reranker: bool
    backend: str
    root: str
    query_encoder: bool = False
    document_version: str = ""  # whose document encoder it is (``document_version_of``)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class LoadedModel:
    def __init__(self, layout: ModelLayout, backend: str = "onnx"):
        if backend not in SERVE_BACKENDS:
            raise ValueError(f"unknown backend {backend!r}: use one of {SERVE_BACKENDS}")
        from ragrec.chunking import ModelTokenizer

        self.layout = layout
        self.encoder = _encoder(layout.embedder_dir, backend)
        self.query_encoder = None if layout.query_encoder_dir is None else \
            _encoder(layout.query_encoder_dir, backend)
        self.tokenizer = ModelTokenizer(layout.embedder_dir)
        self.special_tokens = self.tokenizer.max_input_tokens - self.tokenizer.max_content_tokens
        self.reranker = None
        self._rerank_backend = "torch" if backend == "torch" else "onnx"
        self._rerank_lock = threading.Lock()
        version = layout.version if backend == "torch" else self.encoder.model_version
        self.info = ModelInfo(layout.name, version, self.encoder.dims,
                              self.encoder.max_input_tokens, layout.reranker_dir is not None,
                              backend, str(layout.root), self.query_encoder is not None
                              or bool(self.encoder.prefixes.get("query")),
                              self.encoder.document_version)

    @classmethod
    def from_uri(cls, uri: str, backend: str | None = None) -> LoadedModel:
        return cls(load_layout(uri), backend or ServeModelSettings.from_env().backend)

    def warm_up(self) -> None:
        """Load weights now (not on the first request) so a swap only goes live when ready."""
        self.embed(["warm-up"])
        if self.info.query_encoder:
            self.embed(["warm-up"], "query")
        if self.info.reranker:
            self.rerank("warm-up", ["warm-up"])

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Word pieces each text occupies in the model's input, special tokens included."""
        return [count + self.special_tokens for count in self.tokenizer.count(texts)]

    def embed(self, texts: Sequence[str], role: str = "document") -> np.ndarray:
        """Vectors of ``texts``: documents by the embedder, queries (``role`` "query") by the
        query encoder when the version has one; each with its base's prefix for the role."""
        encoder = self.query_encoder if role == "query" and self.query_encoder else self.encoder
        return encoder.embed(list(texts), role=role).vectors

    def embed_items(self, items: Sequence[tuple[str, str]]) -> np.ndarray:
        """Vectors of (role, text) items in their order (one batch may merge requests of
        both roles)."""
        vectors = np.zeros((len(items), self.info.dims), dtype=np.float32)
        for role in dict.fromkeys(role for role, _ in items):
            rows = [i for i, (r, _) in enumerate(items) if r == role]
            vectors[rows] = self.embed([items[i][1] for i in rows], role)
        return vectors

    def rerank(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return self.rerank_pairs([(query, doc) for doc in documents])

    def rerank_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Scores of (query, passage) pairs, of one query or of several."""
        if self.layout.reranker_dir is None:
            raise LookupError(f"model {self.info.version} has no reranker")
        with self._rerank_lock:
            if self.reranker is None:
                from ragrec.models.reranker import load_cross_encoder

                self.reranker = load_cross_encoder(self.layout.reranker_dir,
                                                   backend=self._rerank_backend)
        return self.reranker.score_pairs(list(pairs))


def _encoder(model_dir, backend: str):
    if backend == "torch":
        from ragrec.embedding.in_process import InProcessEmbedder

        return InProcessEmbedder(model_dir)  # batch 16: measured best
    from ragrec.embedding.onnx_runtime import OnnxEmbedder

    return OnnxEmbedder(model_dir, quantize=backend == "onnx-int8")
