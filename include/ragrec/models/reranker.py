"""The cross-encoder reranker: (query, passage) -> relevance score, in process.

It runs on ONNX Runtime by default (``OnnxCrossEncoder``): the version's ``model.onnx``
(training writes it) or a graph built from its weights without torch; the pairs are
tokenised as the cross-encoder was trained (query, passage, cut longest-first to
``RERANK_MAX_LENGTH`` word pieces) and the score is its logit through the activation the
model declares (sigmoid for one label, as sentence-transformers applies it).
``backend="torch"`` runs sentence-transformers' ``CrossEncoder`` itself (training).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragrec.config import HF_OFFLINE, set_library_defaults

RERANK_MAX_LENGTH = 320  # word pieces for query + passage; longer pairs are cut at the passage end
RERANK_BACKENDS = ("onnx", "torch")


def _activation(model_dir: Path):
    """The function sentence-transformers' CrossEncoder applies to the logits when it
    predicts: the one the model's config names, else sigmoid for a single label."""
    config = json.loads((model_dir / "config.json").read_text())
    named = (config.get("sentence_transformers") or {}).get("activation_fn") \
        or config.get("sbert_ce_default_activation_function")
    labels = len(config.get("id2label") or {}) or config.get("num_labels", 1)
    kind = named.rsplit(".", 1)[-1] if named else ("Sigmoid" if labels == 1 else "Identity")
    if kind == "Sigmoid":
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    if kind == "Identity":
        return lambda x: x
    raise ValueError(f"{model_dir}: activation {named!r} is not supported (Sigmoid, Identity)")


class PairCache:
    """The scores of recently seen (query, passage) pairs, at most ``size`` of them (least
    recently used go first): a repeated query's head is not run through the model again."""

    def __init__(self, size: int = 100_000):
        import threading
        from collections import OrderedDict

        self.size = size
        self._scores: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(query: str, passage: str) -> bytes:
        import hashlib

        return hashlib.blake2b(f"{query}\x1f{passage}".encode(), digest_size=16).digest()

    def get(self, key: bytes) -> float | None:
        with self._lock:
            score = self._scores.get(key)
            if score is None:
                self.misses += 1
                return None
            self._scores.move_to_end(key)
            self.hits += 1
            return score

    def put(self, key: bytes, score: float) -> None:
        with self._lock:
            self._scores[key] = score
            self._scores.move_to_end(key)
            while len(self._scores) > self.size:
                self._scores.popitem(last=False)


class OnnxCrossEncoder:
    """A cross-encoder on ONNX Runtime: no torch. ``score_pairs`` takes pairs of any queries
    (the model server merges concurrent requests into one call); scores of pairs seen
    recently come from ``cache``."""

    def __init__(self, model_dir: Path, batch_size: int = 16,
                 max_length: int = RERANK_MAX_LENGTH, threads: int | None = None,
                 cache_size: int = 100_000):
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.activation = _activation(self.model_dir)
        self.cache = PairCache(cache_size) if cache_size else None
        self._session = None
        self._tokenizer = None

    def _load(self):
        if self._session is None:
            from tokenizers import Tokenizer

            from ragrec.embedding.onnx_runtime import cpu_session, export_onnx

            tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_length, strategy="longest_first")
            self._tokenizer = tokenizer
            self._session = cpu_session(export_onnx(self.model_dir, head="score"),
                                        self.threads)
        return self._session, self._tokenizer

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return self.score_pairs([(query, doc) for doc in documents])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        scores = np.zeros(len(pairs), dtype=np.float32)
        keys = [PairCache.key(q, d) for q, d in pairs] if self.cache else []
        todo = []
        for row in range(len(pairs)):
            cached = self.cache.get(keys[row]) if self.cache else None
            if cached is None:
                todo.append(row)
            else:
                scores[row] = cached
        if todo:
            scores[todo] = self._run([pairs[row] for row in todo])
            if self.cache:
                for row in todo:
                    self.cache.put(keys[row], float(scores[row]))
        return scores

    def _run(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(pairs)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        scores = np.zeros(len(pairs), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encodings[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            types, mask = np.zeros_like(ids), np.zeros_like(ids)
            for line, row in enumerate(rows):
                encoding = encodings[row]
                ids[line, :len(encoding.ids)] = encoding.ids
                types[line, :len(encoding.ids)] = encoding.type_ids
                mask[line, :len(encoding.ids)] = 1
            logits = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                        "token_type_ids": types})[0]
            scores[rows] = self.activation(logits[:, 0])
        return scores


class CrossEncoderScorer:
    def __init__(self, model, batch_size: int = 16):
        self.model = model
        self.batch_size = batch_size

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return self.score_pairs([(query, doc) for doc in documents])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        scores = self.model.predict(list(pairs), batch_size=self.batch_size,
                                    show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(-1)


def load_cross_encoder(model_dir: Path, device: str | None = None,
                       backend: str = "onnx") -> OnnxCrossEncoder | CrossEncoderScorer:
    """The reranker of ``model_dir`` on ``backend``: ONNX Runtime (default, no torch) or
    sentence-transformers on torch (``device``)."""
    if backend not in RERANK_BACKENDS:
        raise ValueError(f"unknown reranker backend {backend!r}: use one of {RERANK_BACKENDS}")
    if backend == "onnx":
        return OnnxCrossEncoder(model_dir)
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
