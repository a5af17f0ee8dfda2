"""The runtime's ONNX graphs, built from safetensors weights without torch, against PyTorch
(the training environment's reference): the base bi-encoder's vectors and a cross-encoder's
scores agree to float precision, padding and truncation included; a process that cannot
import torch embeds and reranks; a graph a version ships is used only while its weights
are no newer."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

WORDS = ("index search vector passage model query token embed chunk rerank alias shard "
         "document policy travel network security answer cluster refresh bulk").split()


def _texts(seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(n)) for n in (1, 7, 60, 230, 500)]
    return texts + ["The VPN client drops at the airport; switch to the TCP gateway.",
                    "Ünïcödé, emoji 🚀 and CJK 漢字 survive the tokenizer."]


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    """A cross-encoder started from the base model (a seeded, fresh scoring head)."""
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.reranker import init_cross_encoder

    return init_cross_encoder(base_model_dir(), tmp_path_factory.mktemp("ce") / "reranker")


def test_the_built_encoder_graph_gives_pytorchs_vectors(tmp_path, monkeypatch):
    from ragrec.embedding.in_process import InProcessEmbedder
    from ragrec.embedding.onnx_runtime import OnnxEmbedder

    monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path))  # built here, not reused
    texts = _texts()
    reference = InProcessEmbedder().embed(texts).vectors  # sentence-transformers on torch
    onnx = OnnxEmbedder()
    vectors = onnx.embed(texts).vectors
    assert list(tmp_path.glob("onnx/*/model.onnx"))
    assert np.abs(vectors - reference).max() < 1e-5
    assert onnx.model_version == InProcessEmbedder().model_version


def test_the_built_cross_encoder_graph_gives_pytorchs_scores(cross_encoder_dir, tmp_path,
                                                              monkeypatch):
    from ragrec.models.reranker import load_cross_encoder

    monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path))
    query = "how are hotel costs reimbursed after a trip"
    documents = _texts(5)  # passages past the 320 word pieces are cut as in training
    reference = load_cross_encoder(cross_encoder_dir, backend="torch").score(query, documents)
    scores = load_cross_encoder(cross_encoder_dir).score(query, documents)
    assert np.abs(scores - reference).max() < 1e-6
    assert list(np.argsort(scores)) == list(np.argsort(reference))


def test_a_process_without_torch_embeds_and_reranks(cross_encoder_dir, tmp_path):
    """torch made unimportable: the graphs are built from the weights and both models run."""
    script = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
from ragrec.embedding.onnx_runtime import OnnxEmbedder
from ragrec.models.reranker import load_cross_encoder
vectors = OnnxEmbedder().embed(["the vpn drops", "parental leave"]).vectors
scores = load_cross_encoder({str(cross_encoder_dir)!r}).score("vpn", ["the vpn drops", "x"])
assert vectors.shape == (2, 384) and scores.shape == (2,)
print("ok", [m for m in sys.modules if m.split(".")[0] in ("torch", "sentence_transformers")])
"""
    env = {**os.environ, "RAGREC_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[0] == "ok ['torch']"  # only the blocked entry


def test_a_shipped_graph_is_used_only_while_its_weights_are_no_newer(tmp_path, monkeypatch):
    import shutil

    from ragrec.embedding.in_process import base_model_dir
    from ragrec.embedding.onnx_graph import write_graph
    from ragrec.embedding.onnx_runtime import export_onnx

    monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    shutil.copytree(base_model_dir(), model)
    shipped = write_graph(model, model / "model.onnx")
    assert export_onnx(model) == shipped
    time.sleep(0.01)
    (model / "model.safetensors").touch()  # the weights changed after the graph
    rebuilt = export_onnx(model)
    assert rebuilt != shipped and rebuilt.is_relative_to(tmp_path / "cache")


def test_repeated_pairs_come_from_the_score_cache(cross_encoder_dir, tmp_path, monkeypatch):
    from ragrec.models.reranker import OnnxCrossEncoder

    monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path))
    scorer = OnnxCrossEncoder(cross_encoder_dir, cache_size=3)
    documents = ["the vpn drops", "hotel receipts", "parental leave", "laptop stolen"]
    first = scorer.score("vpn", documents)
    assert (scorer.cache.hits, scorer.cache.misses) == (0, 4)
    runs = []
    scorer._run = lambda pairs, run=scorer._run: runs.append(len(pairs)) or run(pairs)
    again = scorer.score("vpn", documents[1:])  # the 3 most recent pairs are kept
    assert runs == [] and scorer.cache.hits == 3
    assert np.array_equal(again, first[1:])
    scorer.score("vpn", documents[:1])  # evicted (size 3): scored again
    assert runs == [1]
