"""The model lifecycle end to end on a small BEIR dataset and the real node: train the
embedder and the reranker (hard negatives mined from the index), evaluate every mode with
weights tuned on train, register the version; plus the fusion arithmetic by hand."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from conftest import ROOT, fresh_cache
from ragrec.retrieval import fusion

TOPICS = {
    "vpn": ["The VPN gateway needs a client certificate before it lets a laptop connect.",
            "Renew the VPN certificate every year from the self-service portal."],
    "payroll": ["Payroll runs on the 25th; overtime is paid the following month.",
                "Payslips are in the HR portal under compensation documents."],
    "printer": ["The third-floor printer jams when duplex printing on thick paper.",
                "Printer toner is ordered through the facilities desk."],
    "backup": ["Laptops back up to the cloud vault every night at two.",
               "Restore a deleted file from the backup vault within thirty days."],
    "parking": ["Visitor parking permits are issued at reception.",
                "Staff parking spaces are allocated by seniority each quarter."],
    "security": ["Report phishing e-mails with the button in the mail client.",
                 "Badges must be worn visibly in the server room."],
}
QUESTIONS = {
    "vpn": ["how do I connect the vpn from my laptop", "vpn certificate renewal"],
    "payroll": ["when is salary paid", "where are my payslips"],
    "printer": ["printer paper jam duplex", "order toner for the printer"],
    "backup": ["when do laptops back up", "recover a deleted file"],
    "parking": ["parking permit for a visitor", "how are staff parking spaces given"],
    "security": ["what to do with a phishing mail", "badge rules in the server room"],
}


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
    root = tmp_path_factory.mktemp("tiny-beir")
    (root / "qrels").mkdir()
    corpus, queries, train, test = [], [], [], []
    for topic, passages in TOPICS.items():
        for n, text in enumerate(passages):
            corpus.append({"_id": f"{topic}-{n}", "title": topic.title(), "text": text})
        for n, question in enumerate(QUESTIONS[topic]):
            qid = f"q-{topic}-{n}"
            queries.append({"_id": qid, "text": question})
            (train if n == 0 else test).append((qid, f"{topic}-{n}"))
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    for name, rows in (("train", train), ("test", test)):
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in rows]
        (root / "qrels" / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return root


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
    tuned_on = tuning_sample(train, 2)
    assert len(tuned_on) == 2 and set(tuned_on) <= set(train)
    assert set(tuned_on) <= set(tuning_sample(train, 4))  # a smaller sample stays inside
    queries = dataset.queries()
    learned = {e.query for e in from_beir(dataset, "train", holdout=4).examples}
    assert learned and not learned & {queries[q] for q in tuning_sample(train, 4)}
    assert len(from_beir(dataset, "train").examples) == len(train)


def _weights_digest(folder) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_train_evaluate_register(tiny_beir, tmp_path, project_env, es_url, index_name,
                                 cleanup_alias):
    env = {**project_env, "ES_URL": es_url, "RAGREC_CACHE_DIR": fresh_cache(tmp_path / "cache")}
    cleanup_alias(index_name)
    out = tmp_path / "kb-v1"
    common = ["--dataset", str(tiny_beir), "--index", index_name, "--epochs", "1",
              "--batch-size", "4", "--negatives", "1", "--holdout", "2", "--name", "kb-minilm",
              "--json"]
    embedder = _ragrec(env, "train", "embedder", "--out", str(out), *common)
    metrics = embedder["metrics"]
    assert embedder["kind"] == "embedder" and embedder["result"]["steps"] >= 1
    assert {"before", "after"} <= set(metrics) and metrics["eval_split"] == "test"
    reranker = _ragrec(env, "train", "reranker", "--out", str(out), *common)
    assert reranker["version"] == embedder["version"]  # one version directory, both models
    assert "ndcg@10_reranked" in reranker["metrics"]

    card = json.loads((out / "ragrec-model.json").read_text())
    lineage = card["lineage"]["embedder"]
    assert lineage["base_model"] == "all-minilm-l6-v2-base"
    assert lineage["data"]["pairs"] == 4 and lineage["data"]["held_out_queries"] == 2
    assert len(lineage["data"]["sha256"]) == 64
    assert lineage["data"]["hard_negatives_from"] == index_name
    assert card["reranker"] == "reranker" and (out / "metrics.json").is_file()

    # Same seed, same data -> the same weights.
    again = tmp_path / "kb-v1-again"
    _ragrec(env, "train", "embedder", "--out", str(again), "--no-eval", *common)
    assert _weights_digest(out / "embedder") == _weights_digest(again / "embedder")

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
    assert registered["lineage"]["embedder"]["data"]["pairs"] == 4
