"""The in-process encoder runtimes agree: ONNX Runtime float32 (the default) gives the
PyTorch model's vectors under the same model version; int8 is close but versioned apart."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from ragrec.embedding import DEFAULT_BACKEND, make_embedder

TEXTS = [
    "Aspirin reduces the risk of myocardial infarction in men over fifty.",
    "Elasticsearch stores dense vectors in HNSW graphs.",
    "short",
    "A much longer passage " * 30,
]


@pytest.fixture(scope="module")
def onnx_float():
    return make_embedder(backend="onnx")


def test_default_backend_is_onnx_float(monkeypatch):
    monkeypatch.delenv("RAGREC_ENCODER_BACKEND", raising=False)
    monkeypatch.delenv("RAGREC_EMBED_URL", raising=False)
    encoder = make_embedder()
    assert DEFAULT_BACKEND == "onnx" and type(encoder).__name__ == "OnnxEmbedder"
    assert not encoder.quantize


def test_onnx_float_matches_torch(embedder, onnx_float):
    torch_vectors = embedder.embed(TEXTS).vectors
    onnx_vectors = onnx_float.embed(TEXTS).vectors
    assert onnx_float.model_version == embedder.model_version
    assert onnx_float.dims == embedder.dims == 384
    assert np.abs(torch_vectors - onnx_vectors).max() < 1e-4


def test_int8_is_close_but_versioned_apart(embedder):
    int8 = make_embedder(backend="onnx-int8")
    cosines = (int8.embed(TEXTS).vectors * embedder.embed(TEXTS).vectors).sum(axis=1)
    assert cosines.min() > 0.97
    assert int8.model_version == embedder.model_version + "+onnx-int8"


def test_onnx_process_never_imports_torch(onnx_float):
    onnx_float.embed(["export the graph first"])  # cached for the child below
    code = ("import sys; from ragrec.embedding import make_embedder; "
            "e = make_embedder(backend='onnx'); e.embed(['hello']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_backend_is_refused():
    from ragrec.embedding.base import EmbeddingError

    with pytest.raises(EmbeddingError, match="unknown encoder backend"):
        make_embedder(backend="tensorflow")


def test_a_fine_tuned_encoder_never_passes_for_the_base_model(tmp_path):
    """The version on the card of the version directory reaches every runtime."""
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.store import write_bundle

    layout = write_bundle(tmp_path / "v7", "kb-minilm", "kb-minilm-v7", base_model_dir())
    for backend in ("torch", "onnx", "onnx-int8"):
        version = encoder_for(layout.embedder_dir, backend).model_version
        assert version.startswith("kb-minilm-v7"), (backend, version)


def test_a_model_saved_by_sentence_transformers_6_keeps_its_input_limit(tmp_path):
    """sentence-transformers 6 no longer writes max_seq_length into its own config (only the
    tokenizer's model_max_length): every runtime and the chunker must still read 256, not
    fall back to 512 (slower, and text the model never learned to read)."""
    from sentence_transformers import SentenceTransformer

    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir

    saved = tmp_path / "st6"
    model = SentenceTransformer(str(base_model_dir()), device="cpu", local_files_only=True)
    model.max_seq_length = 256
    model.save(str(saved))
    assert "max_seq_length" not in (saved / "sentence_bert_config.json").read_text()
    assert ModelTokenizer(saved).max_input_tokens == 256
    for backend in ("torch", "onnx"):
        assert encoder_for(saved, backend).max_input_tokens == 256, backend
