"""The cross-encoder reranker: (query, passage) -> relevance score, in process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragrec.config import HF_OFFLINE, set_library_defaults

RERANK_MAX_LENGTH = 320  # word pieces for query + passage; longer pairs are cut at the passage end


class CrossEncoderScorer:
    def __init__(self, model, batch_size: int = 16):
        self.model = model
        self.batch_size = batch_size

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, doc) for doc in documents]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(-1)


def load_cross_encoder(model_dir: Path, device: str | None = None) -> CrossEncoderScorer:
    set_library_defaults(HF_OFFLINE)
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(model_dir), device=device, local_files_only=True,
                         max_length=RERANK_MAX_LENGTH)
    return CrossEncoderScorer(model)


def init_cross_encoder(encoder_dir: Path, out: Path, seed: int = 13) -> Path:
    """A cross-encoder that starts from a bi-encoder's transformer (fresh scoring head):
    the starting point for ``ragrec train reranker``; nothing is downloaded."""
    set_library_defaults(HF_OFFLINE)
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)  # the fresh scoring head is the only random part
    model = CrossEncoder(str(encoder_dir), num_labels=1, local_files_only=True,
                         max_length=RERANK_MAX_LENGTH)
    model.save(str(out))
    return Path(out)
