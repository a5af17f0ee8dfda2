"""Retrieval metrics on hand-checkable rankings, how a tuned weight is settled, and the BEIR
loader on SciFact."""

from __future__ import annotations

import math

import pytest

from conftest import SHARED_DATA
from ragrec.eval.datasets import BeirDataset, write_corpus_as_files
from ragrec.eval.metrics import doc_ranking, mrr_at, ndcg_at, recall_at, score_run
from ragrec.eval.runner import settled


def test_ndcg_recall_mrr_by_hand():
    relevant = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "c"], relevant) == pytest.approx(1.0)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # hit at rank 2 only
    assert ndcg_at(["c", "a"], {"a": 1, "b": 1}) == pytest.approx(expected * 1.0)
    assert recall_at(["x", "a"], relevant, k=100) == 0.5
    assert mrr_at(["x", "y", "b"], relevant) == pytest.approx(1 / 3)
    assert mrr_at(["x"] * 10 + ["a"], relevant) == 0.0


def test_chunk_hits_collapse_to_documents_at_their_best_rank():
    assert doc_ranking(["7.md", "3.md", "7.md", "9.md"]) == ["7", "3", "9"]


def test_a_tuned_weight_must_beat_the_default_by_more_than_noise():
    default = {f"q{i}": 0.5 for i in range(8)}
    # one query far better, the rest a little worse: a higher mean, within its error
    lucky = {**{f"q{i}": 0.45 for i in range(8)}, "q0": 1.0}
    assert sum(lucky.values()) > sum(default.values())
    assert settled({0.0: default, 0.4: lucky}, 0.0) == 0.0
    # the same mean gain, on every query: kept
    steady = {q: v + (sum(lucky.values()) - sum(default.values())) / 8
              for q, v in default.items()}
    assert settled({0.0: default, 0.4: lucky, 0.7: steady}, 0.0) == 0.7
    # a tie keeps the first option listed, a worse option never wins
    assert settled({"hybrid": default, "hybrid-convex": dict(default)}, "hybrid") == "hybrid"
    assert settled({0.5: steady, 0.6: default}, 0.5) == 0.5


@pytest.mark.skipif(not (SHARED_DATA / "scifact").is_dir(), reason="SciFact data missing")
def test_scifact_loads_and_writes_as_a_file_source(tmp_path):
    data = BeirDataset(SHARED_DATA / "scifact")
    qrels = data.qrels("test")
    assert len(qrels) == 300
    queries = data.queries()
    assert all(q in queries for q in qrels)
    written = write_corpus_as_files(data, tmp_path, every=100)
    assert written == 52
    sample = next(tmp_path.iterdir()).read_text()
    assert sample.startswith("# ") and len(sample) > 100
    perfect = {q: list(rel) for q, rel in qrels.items()}
    assert score_run(perfect, qrels)["ndcg@10"] == pytest.approx(1.0)
