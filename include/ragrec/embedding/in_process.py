"""The embedding model in this process (sentence-transformers), for the demo, tests and
machines without an endpoint. Same model, same vectors as the model server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragrec.config import SENTENCE_TRANSFORMERS_QUIET, ModelEndpointSettings, set_library_defaults
from ragrec.embedding.base import EmbedResult, check_vectors, with_prefix
from ragrec.embedding.bases import BASE_MODEL_VERSION, PREFIXES, bundled_model_dir, installed


def base_model_dir() -> Path:
    """The base encoder's files: ``RAGREC_BASE_MODEL``'s entry of ``embedding.bases`` when
    one is chosen (installed by ``ragrec models install-base``), else the bundled model."""
    name = ModelEndpointSettings.from_env().base_model
    return installed(name) if name else bundled_model_dir()


def model_version_of(model_dir: Path) -> str:
    """The version on the model card: in the directory itself, or in the version directory
    above it when this is that version's ``embedder/`` (or ``query_encoder/``); else the
    base model's. Index and
    query encoder are matched on this string, so a fine-tuned encoder must never pass for
    the base model."""
    model_dir = Path(model_dir)
    card = model_dir / "ragrec-model.json"
    if card.is_file():
        return json.loads(card.read_text())["version"]
    parent = model_dir.parent / "ragrec-model.json"
    if parent.is_file():
        data = json.loads(parent.read_text())
        if model_dir.name in (data.get("embedder"), data.get("query_encoder")):
            return data["version"]
    return BASE_MODEL_VERSION


def document_version_of(model_dir: Path) -> str:
    """The version whose document encoder ``model_dir`` is. A version that trained only its
    query side keeps its base's document encoder (its card's ``lineage.documents``:
    ``trained`` false, ``base_model`` the version it came from), so its documents get the
    very vectors the base's index holds, and a rebuild for it can copy them rather than
    encode again. Any other encoder: its own version (``model_version_of``)."""
    model_dir = Path(model_dir)
    parent = _read_json(model_dir.parent / "ragrec-model.json")
    documents = parent.get("lineage", {}).get("documents", {})
    if model_dir.name == parent.get("embedder") and documents.get("trained") is False \
            and documents.get("base_model"):
        return documents["base_model"]
    return model_version_of(model_dir)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}




def model_prefixes(model_dir: Path) -> dict[str, str]:
    """The text a model's base expects in front of queries and of passages (e5's
    ``query: `` / ``passage: ``, bge's search instruction; ``embedding.bases`` writes them
    into ``prefixes.json``); none for a model without one."""
    return {role: str(text) for role, text in _read_json(Path(model_dir) / PREFIXES).items()
            if text}


def model_max_tokens(model_dir: Path) -> int:
    """Word pieces the encoder reads: ``max_seq_length`` of the sentence-transformers config
    (< 6), else the tokenizer's ``model_max_length`` (sentence-transformers 6 keeps it only
    there), else the transformer's position limit."""
    config = _read_json(model_dir / "sentence_bert_config.json")
    if config.get("max_seq_length"):
        return int(config["max_seq_length"])
    tokenizer = _read_json(model_dir / "tokenizer_config.json")
    limit = tokenizer.get("model_max_length")
    if isinstance(limit, int | float) and 0 < limit < 100_000:
        return int(limit)
    return int(_read_json(model_dir / "config.json").get("max_position_embeddings", 512))


def model_dims(model_dir: Path) -> int:
    """Output dimension from the sentence-transformers module configs, without loading
    weights: the last Dense layer's ``out_features``, else the pooling dimension."""
    dims = None
    for module in json.loads((model_dir / "modules.json").read_text()):
        config = _read_json(model_dir / module.get("path", "") / "config.json")
        if module["type"].endswith("Pooling"):
            # sentence-transformers < 6 writes word_embedding_dimension, 6 embedding_dimension
            dims = config.get("word_embedding_dimension", config.get("embedding_dimension", dims))
        elif module["type"].endswith("Dense"):
            dims = config.get("out_features", dims)
    if dims is None:
        raise ValueError(f"cannot tell the embedding dimension of {model_dir}")
    return int(dims)


class InProcessEmbedder:
    """Loads the model on the first ``embed`` call, so a run with nothing to embed (a no-op
    re-run) never pays for importing torch and reading the weights."""

    # 16 measured best on 2 CPU cores for 256-token chunks (bench/encode_only: 16 < 32 < 64).
    def __init__(self, model_dir: Path | None = None, batch_size: int = 16,
                 device: str | None = None):
        env_dir = ModelEndpointSettings.from_env().model_dir
        self.model_dir = Path(model_dir or env_dir or base_model_dir())
        if not (self.model_dir / "modules.json").is_file():
            raise FileNotFoundError(f"{self.model_dir} is not a sentence-transformers model")
        self.batch_size = batch_size
        self.device = device
        self.dims = model_dims(self.model_dir)
        self.max_input_tokens = model_max_tokens(self.model_dir)
        self.model_version = model_version_of(self.model_dir)
        self.document_version = document_version_of(self.model_dir)
        self.prefixes = model_prefixes(self.model_dir)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            set_library_defaults(SENTENCE_TRANSFORMERS_QUIET)
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_dir), device=self.device,
                                              local_files_only=True)
        return self._model

    def describe(self) -> None:
        return None

    def embed(self, texts: Sequence[str], token_counts: Sequence[int] | None = None,
              role: str = "document") -> EmbedResult:
        if not texts:
            return EmbedResult(np.zeros((0, self.dims), dtype=np.float32))
        vectors = self.model.encode(
            with_prefix(texts, self.prefixes, role), batch_size=self.batch_size,
            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        )
        return EmbedResult(check_vectors(vectors, len(texts), self.dims))
