"""The embedder interface and the checks every vector passes before it is indexed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class EmbeddingError(RuntimeError):
    pass


@dataclass
class EmbedResult:
    """Vectors for a list of texts; rows whose request failed are listed in ``errors``."""

    vectors: np.ndarray  # (n, dims) float32; rows in ``errors`` are undefined
    errors: dict[int, str] = field(default_factory=dict)


ROLES = ("query", "document")  # what a text is to the encoder: a question or a passage


class Embedder(Protocol):
    model_version: str
    dims: int
    max_input_tokens: int

    def describe(self) -> None:
        """Learn dims / model version / input limit (a probe call for remote endpoints)."""
        ...

    def embed(self, texts: Sequence[str], token_counts: Sequence[int] | None = None,
              role: str = "document") -> EmbedResult:
        """Vectors of ``texts`` as ``role`` texts: a model whose base reads queries and
        passages with different prefixes (``in_process.model_prefixes``) gets them."""
        ...


def with_prefix(texts: Sequence[str], prefixes: dict[str, str], role: str) -> list[str]:
    """``texts`` as the encoder reads them in ``role`` (its prefix in front, if any)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    prefix = prefixes.get(role, "")
    return [prefix + t for t in texts] if prefix else list(texts)


def document_version(embedder) -> str:
    """The version whose document vectors ``embedder`` gives: its ``document_version`` where
    it knows one (a version that kept its base's document encoder names the base), else its
    model version. Stored vectors are reused across index versions that agree on it."""
    return getattr(embedder, "document_version", None) or embedder.model_version


def check_vectors(vectors, count: int, dims: int | None) -> np.ndarray:
    """Shape, dimension and finiteness of a batch; raises EmbeddingError with the reason."""
    if isinstance(vectors, list) and dims is not None:
        for row in vectors:
            if isinstance(row, list) and len(row) != dims:
                raise EmbeddingError(
                    f"wrong embedding dimension: got {len(row)}, the index expects {dims}"
                )
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbeddingError(f"embedding response is not a numeric matrix: {exc}") from exc
    if array.ndim != 2 or array.shape[0] != count:
        raise EmbeddingError(f"expected {count} vectors, got shape {array.shape}")
    if dims is not None and array.shape[1] != dims:
        raise EmbeddingError(
            f"wrong embedding dimension: got {array.shape[1]}, the index expects {dims}"
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise EmbeddingError(f"{bad} vector(s) contain NaN or infinite values")
    if (np.linalg.norm(array, axis=1) == 0).any():
        raise EmbeddingError("zero vector in response (cosine similarity is undefined)")
    return array
