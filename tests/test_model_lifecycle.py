"""The model lifecycle end to end on a small BEIR dataset and the real node: train the
embedder and the reranker (hard negatives mined from the index), evaluate every mode with
weights tuned on train, register the version; plus the fusion arithmetic by hand."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from beir_sets import write_tiny_beir

from conftest import ROOT, fresh_cache
from ragrec.retrieval import fusion


def test_convex_fusion_and_rerank_blend_by_hand():
    bm25, dense = {"a": 10.0, "b": 5.0, "c": 0.0}, {"b": 0.9, "d": 0.5}
    mixed = fusion.convex(bm25, dense, weight=0.5)
    assert mixed == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.0, "d": 0.0})
    assert fusion.ranked(fusion.convex(bm25, dense, weight=0.0))[:1] == ["a"]
    assert fusion.rrf([["a", "b"], ["b", "c"]]) == pytest.approx(
        {"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62})
    from ragrec.retrieval.searcher import Hit, blend

    def hits(scores):
        return [Hit(id=i, doc_id=i, chunk_no=0, text=i, score=s) for i, s in scores.items()]

    order = blend(hits({"a": 3.0, "b": 2.0, "c": 1.0, "z": 0.5}),
                  {"a": 0.1, "b": 0.9, "c": 0.5}, weight=1.0)
    assert [h.id for h in order] == ["b", "c", "a", "z"]  # the unreranked tail keeps its place
    assert order[0].scores["rerank"] == 0.9 and order[-1].score == 0.5
    assert [h.id for h in blend(hits({"a": 1.0, "b": 0.0}), {"a": 0.0, "b": 1.0},
                                weight=0.0)] == ["a", "b"]


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory):
    return write_tiny_beir(tmp_path_factory.mktemp("tiny-beir"))


def _ragrec(env, *args):
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_training_holds_out_the_queries_eval_tunes_on(tiny_beir):
    from ragrec.eval.datasets import BeirDataset, tuning_sample
    from ragrec.models.training_data import from_beir

    dataset = BeirDataset(tiny_beir)
    train = dataset.qrels("train")
    # At most a fifth of the train queries, whatever is asked: 6 queries -> 1 held out.
    tuned_on = tuning_sample(train, 150)
    assert len(tuned_on) == 1 and set(tuned_on) <= set(train)
    many = [f"q{n}" for n in range(20)]
    assert len(tuning_sample(many, 150)) == 4
    assert set(tuning_sample(many, 2)) <= set(tuning_sample(many, 4))  # a smaller one inside
    queries = dataset.queries()
    learned = {e.query for e in from_beir(dataset, "train", holdout=150).examples}
    assert len(learned) == 5 and not learned & {queries[q] for q in tuned_on}
    assert len(from_beir(dataset, "train").examples) == len(train)


def _weights_digest(folder) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_train_evaluate_register(tiny_beir, tmp_path, project_env, es_url, es, index_name,
                                 cleanup_alias):
    env = {**project_env, "ES_URL": es_url, "RAGREC_CACHE_DIR": fresh_cache(tmp_path / "cache")}
    cleanup_alias(index_name)
    out = tmp_path / "kb-v1"
    common = ["--dataset", str(tiny_beir), "--index", index_name, "--epochs", "1",
              "--batch-size", "4", "--negatives", "1", "--holdout", "2", "--name", "kb-minilm",
              "--json"]
    embedder = _ragrec(env, "train", "embedder", "--out", str(out), *common)
    metrics = embedder["metrics"]
    assert embedder["kind"] == "embedder" and embedder["result"]["steps"] == 2  # 5 pairs, 4 a batch
    assert embedder["result"]["budget"]["stopped_by"] == "data"
    assert "mined" not in embedder["result"]  # the query encoder's negatives: the whole index
    assert embedder["result"]["corpus"]["documents"] == 12
    assert embedder["result"]["sample"] == {"pairs": 5, "of_pairs": 5, "queries": 5,
                                            "of_queries": 5}
    assert {"before", "after"} <= set(metrics) and metrics["eval_split"] == "test"
    assert metrics["before"]["queries"] == metrics["after"]["queries"] > 0
    reranker = _ragrec(env, "train", "reranker", "--out", str(out), *common, "--max-steps", "1")
    assert reranker["version"] == embedder["version"]  # one version directory, both models
    # 5 (query, positive, negative) groups, 2 a batch: the step budget cuts the run to a
    # sample of 2 queries, and the card says so.
    assert reranker["result"]["budget"]["stopped_by"] == "max_steps"
    assert reranker["result"]["budget"]["epochs_covered"] == 0.33  # 1 of 3 steps an epoch
    assert reranker["result"]["sample"] == {"pairs": 2, "of_pairs": 5, "queries": 2,
                                            "of_queries": 5}
    assert "ndcg@10_reranked" in reranker["metrics"]

    card = json.loads((out / "ragrec-model.json").read_text())
    lineage = card["lineage"]["embedder"]
    assert lineage["base_model"] == "all-minilm-l6-v2-base"
    assert lineage["data"]["pairs"] == 5 and lineage["data"]["held_out_queries"] == 1
    assert len(lineage["data"]["sha256"]) == 64
    assert lineage["data"]["negatives"] == f"every chunk of {index_name}"
    assert card["lineage"]["reranker"]["data"]["hard_negatives_from"] == index_name
    assert card["reranker"] == "reranker" and (out / "metrics.json").is_file()
    # Documents keep the base encoder (the query encoder learnt against its vectors);
    # queries get the trained one, which reads as far as the base although it trained on
    # queries cut shorter; both answer to the new version.
    from ragrec.embedding.in_process import model_max_tokens, model_version_of
    from ragrec.models.train_settings import settings_for
    from ragrec.models.uris import load_layout

    base = load_layout("base")
    layout = load_layout(str(out))
    assert layout.query_dir == out / "query_encoder" and layout.embedder_dir == out / "embedder"
    assert _weights_digest(layout.embedder_dir) == _weights_digest(base.embedder_dir)
    assert _weights_digest(layout.query_dir) != _weights_digest(base.embedder_dir)
    assert model_version_of(layout.query_dir) == model_version_of(layout.embedder_dir) \
        == card["version"]
    base_reads = model_max_tokens(base.embedder_dir)
    assert settings_for("embedder").max_length < base_reads
    assert model_max_tokens(layout.query_dir) == base_reads

    # A budget that runs out while mining (here: before it starts) keeps the first batch of
    # queries, a seeded random sample, and leaves the others' examples out.
    from ragrec.embedding import encoder_for
    from ragrec.eval.datasets import BeirDataset
    from ragrec.models.training_data import from_beir, mine_hard_negatives

    training = from_beir(BeirDataset(tiny_beir), "train")
    mined = mine_hard_negatives(es, index_name, encoder_for(load_layout("base").embedder_dir),
                                training, per_query=1, deadline=0.0, batch=2,
                                show_progress=False)
    assert mined == {"queries": 2, "of_queries": 6, "stopped_by": "max_minutes"}
    assert len({e.query for e in training.examples}) == 2
    assert all(e.negatives for e in training.examples)

    # Same seed, same data -> the same weights.
    again = tmp_path / "kb-v1-again"
    _ragrec(env, "train", "embedder", "--out", str(again), "--no-eval", *common)
    assert _weights_digest(out / "query_encoder") == _weights_digest(again / "query_encoder")

    reports = tmp_path / "reports"
    report = _ragrec(env, "eval", "--dataset", str(tiny_beir), "--index", f"{index_name}-ft",
                     "--model", str(out), "--report-dir", str(reports), "--tune-queries", "2",
                     "--json")
    cleanup_alias(f"{index_name}-ft")
    assert set(report["metrics"]) == {"bm25", "dense", "hybrid", "hybrid-convex",
                                      "hybrid+rerank"}
    assert report["model_version"] == card["version"]
    assert report["metrics"]["bm25"]["queries"] == 6
    assert 0.0 <= report["tuned"]["convex_weight"] <= 1.0
    assert report["tuned"]["rerank_first_stage"] in ("hybrid", "hybrid-convex")
    html = (reports / "index.html").read_text()
    assert "<svg" in html and card["version"] in html and "hybrid+rerank" in html

    registered = _ragrec(env, "models", "register", str(out), "--registry",
                         f"file://{tmp_path / 'registry'}")
    assert registered["version"] == card["version"] and registered["reranker"] is True
    assert registered["lineage"]["embedder"]["data"]["pairs"] == 5


def test_bad_training_data_is_one_line(tmp_path, project_env):
    """Three judged train queries: the run says so, and what to do, before any work."""
    small = write_tiny_beir(tmp_path / "small", ("vpn", "payroll", "printer"))
    for kind in ("embedder", "reranker"):
        result = subprocess.run(
            [sys.executable, "-m", "ragrec.cli", "train", kind, "--dataset", str(small),
             "--out", str(tmp_path / "out")], cwd=ROOT, env=project_env, capture_output=True,
            text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(
            "ragrec: error: 3 judged queries to train on")
        assert "needs at least 5" in result.stderr
    assert not (tmp_path / "out").exists()
    # A malformed dataset is one line too: which file, which line, what is wrong.
    broken = write_tiny_beir(tmp_path / "broken")
    with open(broken / "queries.jsonl", "a") as handle:
        handle.write('{"_id": "q-x", "text": "cut off\n')
    for command in (["train", "embedder", "--out", str(tmp_path / "out")], ["eval"]):
        result = subprocess.run(
            [sys.executable, "-m", "ragrec.cli", *command, "--dataset", str(broken)],
            cwd=ROOT, env=project_env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(
            f"ragrec: error: {broken / 'queries.jsonl'}:13: not valid JSON (")


def test_the_query_encoder_is_scored_on_the_indexed_vectors(tmp_path):
    """Before/after figures of ``train embedder``: only the queries are encoded, against the
    vectors the index holds, and a document scores its best chunk."""
    import numpy as np

    from ragrec.embedding.base import EmbedResult
    from ragrec.eval.datasets import BeirDataset
    from ragrec.models.training_data import IndexedCorpus

    dataset = BeirDataset(write_tiny_beir(tmp_path / "set", ("vpn", "payroll")))
    e0, e1, e2 = np.eye(3, dtype=np.float32)
    # vpn-1's first chunk points away from its query, its second at it.
    corpus = IndexedCorpus(["vpn-1", "payroll-0", "vpn-0", "vpn-1", "payroll-1"],
                           np.stack([e2, e1, -e0, e0, 0.6 * e0 + 0.8 * e1]))
    assert corpus.owners()[0] == ["vpn-1", "payroll-0", "vpn-0", "payroll-1"]
    assert corpus.owners()[1].tolist() == [0, 1, 2, 0, 3]
    queries = dataset.queries()
    vectors = {queries["q-vpn-1"]: e0, queries["q-payroll-1"]: e1}

    class Encoder:
        def embed(self, texts, role="document"):
            assert role == "query"  # the corpus's vectors are given; only queries are encoded
            return EmbedResult(np.stack([vectors[t] for t in texts]), {})

    scores = corpus.dense_ndcg(Encoder(), dataset, "test")
    # q-vpn-1 (judged vpn-1): vpn-1 1.0 (its best chunk), payroll-1 0.6 -> rank 1.
    # q-payroll-1 (judged payroll-1): payroll-0 1.0, payroll-1 0.8 -> rank 2.
    assert scores["queries"] == 2
    assert scores["ndcg@10"] == pytest.approx((1.0 + 1 / np.log2(3)) / 2, abs=1e-4)


def test_click_held_out_keeps_a_trained_epoch_only_when_it_beats_the_base_by_its_error():
    """Held-out traffic is noisy: over few queries a trained epoch is kept only when its
    gain over the base exceeds one standard error of the per-query differences; over
    enough queries the latest epoch within one error of the best is kept."""
    from ragrec.models.trainers import SMALL_HELD_OUT, _BestEpoch

    def chosen(base: list[float], trained: list[float]) -> int:
        selection = _BestEpoch(None, None, ({}, {}), within_error=True)
        for scores in (base, trained):
            selection.per_query.append({f"q{i}": s for i, s in enumerate(scores)})
            selection.figures.append(round(sum(scores) / len(scores), 4))
        return selection.chosen

    few = 20
    # +0.01 on average, +0.2 / -0.18 query by query: within its error of 0.04.
    noisy = [0.5 + (0.2 if i % 2 else -0.18) for i in range(few)]
    assert chosen([0.5] * few, noisy) == 0
    # +0.05 on every query but one: far outside its error.
    steady = [0.55] * (few - 1) + [0.5]
    assert chosen([0.5] * few, steady) == 1
    # The same noisy gain over enough held-out queries: the trained epoch is kept.
    many = SMALL_HELD_OUT + 10
    assert chosen([0.5] * many, [0.5 + (0.2 if i % 2 else -0.18) for i in range(many)]) == 1
    # A trained epoch below the base is never kept.
    assert chosen([0.5] * many, [0.45] * many) == 0


def test_the_query_encoder_keeps_its_best_held_out_epoch(tiny_beir, tmp_path):
    """Between epochs the held-out queries are ranked over the indexed vectors; the saved
    query encoder is the epoch with the best figure, the base's own weights when training
    only made it worse, and ``patience`` epochs without a better one end the run."""
    import numpy as np

    from ragrec.embedding import encoder_for
    from ragrec.eval.datasets import BeirDataset
    from ragrec.models.train_settings import TrainSettings
    from ragrec.models.trainers import train_query_encoder
    from ragrec.models.training_data import IndexedCorpus, document_text, from_beir
    from ragrec.models.uris import load_layout

    dataset = BeirDataset(tiny_beir)
    base_dir = load_layout("base").embedder_dir
    base = encoder_for(base_dir)
    documents = list(dataset.corpus())
    corpus = IndexedCorpus([d["_id"] for d in documents], np.asarray(
        base.embed([document_text(d) for d in documents]).vectors, dtype=np.float32))
    training = from_beir(dataset, "train")
    queries, qrels = dataset.queries(), dataset.qrels("train")
    held_out = ({q: queries[q] for q in qrels}, qrels)
    base_figure = corpus.ndcg_of(base, *held_out)["ndcg@10"]

    def train(out, **settings):
        result = train_query_encoder(base_dir, training, corpus, out, TrainSettings(
            batch_size=4, max_length=64, **settings), held_out=held_out)
        saved = corpus.ndcg_of(encoder_for(out), *held_out)["ndcg@10"]
        return result, result["held_out"], saved

    # Learning: one figure per epoch after the base's; the saved weights are the best's.
    result, chosen, saved = train(tmp_path / "learns", epochs=3, learning_rate=1e-4)
    figures = chosen["ndcg@10_by_epoch"]
    assert len(figures) == 4 and figures[0] == base_figure
    assert chosen["queries"] == 6 and result["steps"] == 6  # 6 pairs, 4 a batch, 3 epochs
    assert chosen["at_steps"] == [0, 2, 4, 6]
    assert chosen["chosen_epoch"] == max(i for i, f in enumerate(figures)
                                         if f == max(figures))
    assert saved == pytest.approx(figures[chosen["chosen_epoch"]], abs=1e-4)

    # A rate that wrecks the model: epoch 1 is worse than the base, patience 1 stops the
    # run there, and the saved query encoder embeds as the base does.
    result, chosen, saved = train(tmp_path / "wrecked", epochs=3, learning_rate=0.5,
                                  patience=1)
    assert chosen["chosen_epoch"] == 0 and chosen["ndcg@10_by_epoch"][1] < base_figure
    assert len(chosen["ndcg@10_by_epoch"]) == 2
    assert result["steps"] == 2 and result["budget"]["stopped_by"] == "held_out"
    assert saved == base_figure
    probe = ["how do I reset the vpn"]
    assert np.allclose(encoder_for(tmp_path / "wrecked").embed(probe).vectors,
                       base.embed(probe).vectors, atol=1e-5)

    # A budget that stops the run mid-epoch still gets a figure where it stopped.
    result, chosen, saved = train(tmp_path / "cut", epochs=3, learning_rate=1e-4,
                                  max_steps=3)
    assert result["budget"]["stopped_by"] == "max_steps" and chosen["at_steps"] == [0, 2, 3]
    assert saved == pytest.approx(chosen["ndcg@10_by_epoch"][chosen["chosen_epoch"]],
                                  abs=1e-4)
