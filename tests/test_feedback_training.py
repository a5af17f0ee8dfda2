"""Learning from the deployment's own traffic, on the real node with no judged queries:
clicks logged against the index train a query encoder (``ragrec train embedder --events``),
``ragrec eval --events`` scores a version on held-out traffic, and the label-free gate
refuses a candidate that ranks the clicked documents worse than the live version."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from beir_sets import write_tiny_beir
from click_logs import log_chat_feedback, log_traffic

from conftest import ROOT, fresh_cache


def _ragrec(env, *args):
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory):
    return write_tiny_beir(tmp_path_factory.mktemp("tiny-beir-events"))


def _indexed_with_traffic(es, alias, root):
    """The tiny set indexed under ``alias`` with the base model, and searched on it with
    clicks on each query's judged document (``click_logs.log_traffic``): (dataset, query ->
    judged document)."""
    from ragrec.config import cache_dir
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.eval.datasets import BeirDataset
    from ragrec.eval.runner import ensure_index

    dataset = BeirDataset(root)
    ensure_index(es, alias, dataset, encoder_for(base_model_dir()), base_model_dir(),
                 cache_dir(), show_progress=False)
    judged = {q: next(iter(docs)) for split in ("train", "test")
              for q, docs in dataset.qrels(split).items()}
    log_traffic(es, alias, alias, dataset, judged.get)
    return dataset, judged


def test_train_and_evaluate_from_traffic_and_gate_without_labels(
        tiny_beir, tmp_path, project_env, es_url, es, index_name, cleanup_alias):
    from ragrec.chunking import ModelTokenizer
    from ragrec.config import cache_dir
    from ragrec.embedding import encoder_for
    from ragrec.eval.runner import corpus_folder
    from ragrec.indexing import versions
    from ragrec.jobs.reindex import build, traffic_gate
    from ragrec.models.resolver import ModelResolver
    from ragrec.models.uris import load_layout
    from ragrec.retrieval import SearchSpec
    from ragrec.sources import LocalSource

    env = {**project_env, "ES_URL": es_url, "RAGREC_CACHE_DIR": fresh_cache(tmp_path / "cache")}
    cleanup_alias(index_name)
    adversary = f"{index_name}-adversary"
    cleanup_alias(adversary)
    dataset, judged = _indexed_with_traffic(es, index_name, tiny_beir)
    # A second log that clicks another topic's document: what a broken model learns from.
    topics = sorted({d for d in judged.values()})
    log_traffic(es, index_name, adversary, dataset,
                 lambda q: topics[(topics.index(judged[q]) + 4) % len(topics)], seed=9)

    good, stderr = _ragrec(env, "train", "embedder", "--events", index_name, "--index",
                           index_name, "--out", str(tmp_path / "good"), "--max-steps", "4",
                           "--batch-size", "4", "--json")
    events = good["result"]["events"]
    assert events["held_out_queries"] == 2  # a fifth of 12 queries: the two first seen last
    assert events["train_queries"] == 10 and events["sessions"]["sessions_kept"] == 96
    assert events["correction"] == "ipw" and events["applied"] in ("ipw", "none")
    assert events["propensities"]["by_position"][0] == 1.0
    assert f"{index_name}-events: 96 sessions read, 96 kept" in stderr
    assert good["result"]["held_out"]["queries"] == 2  # the epoch is picked on traffic
    assert {"traffic_before", "traffic_after"} <= set(good["metrics"])
    card = json.loads((tmp_path / "good" / "ragrec-model.json").read_text())
    assert card["lineage"]["embedder"]["data"]["source"].startswith("events (")

    report, _ = _ragrec(env, "eval", "--events", index_name, "--model", str(tmp_path / "good"),
                        "--mode", "dense", "--json")
    assert report["held_out_queries"] == 2 and report["index"] == index_name
    served = report["metrics"]["served"]
    assert 0 < served["ndcg@10"] <= 1 and served["ci95"][0] <= served["ndcg@10"]
    assert set(report["per_query"]["dense"]) == set(report["per_query"]["served"])

    bad, _ = _ragrec(env, "train", "embedder", "--events", adversary, "--index", index_name,
                     "--out", str(tmp_path / "bad"), "--holdout", "0", "--max-steps", "30",
                     "--batch-size", "4", "--lr", "1e-3", "--json")
    assert bad["result"]["events"]["held_out_queries"] == 0

    # The gate, as kb_reindex runs it without a golden set: each candidate's index (the
    # base's vectors, copied) against the live one, on the held-out traffic.
    live = versions.current_version(es, index_name)
    folder = corpus_folder(dataset, cache_dir())
    resolver = ModelResolver()
    verdicts = {}
    for name in ("good", "bad"):
        layout = load_layout(str(tmp_path / name))
        resolver.add(layout)
        embedder = encoder_for(layout.embedder_dir)
        candidate = build(es, embedder, ModelTokenizer(layout.embedder_dir),
                          LocalSource(folder), index_name)
        assert candidate["chunks_reused"] == candidate["chunks_indexed"] > 0
        verdicts[name] = traffic_gate(es, resolver, candidate["index"], live, index_name,
                                      SearchSpec("dense"))
    assert versions.current_version(es, index_name) == live  # building never moves the alias
    assert verdicts["bad"]["passed"] is False, verdicts["bad"]["reason"]
    assert verdicts["bad"]["gain"]["gain"] < -0.02
    assert verdicts["good"]["gain"]["gain"] > verdicts["bad"]["gain"]["gain"]
    assert verdicts["bad"]["judged_by"] == "traffic" and verdicts["bad"]["live"]["queries"] == 2


def test_the_reranker_learns_the_chats_helpful_sentences_beside_the_clicks(
        tiny_beir, tmp_path, project_env, es_url, es, index_name, cleanup_alias):
    """``train reranker --events``: the clicks' pairs plus, for the sentence selector, the
    sentence each stored chat turn cited from the source voted ``helped`` (negatives: the
    sentence voted ``down``); the held-out traffic's questions are left out of both, and their
    votes judge the cosine selector and the trained cross-encoder side by side."""

    env = {**project_env, "ES_URL": es_url, "RAGREC_CACHE_DIR": fresh_cache(tmp_path / "cache")}
    cleanup_alias(index_name)
    dataset, judged = _indexed_with_traffic(es, index_name, tiny_beir)
    log_chat_feedback(es, index_name, dataset, judged.get)

    card, stderr = _ragrec(env, "train", "reranker", "--events", index_name, "--index",
                           index_name, "--out", str(tmp_path / "reranker"), "--max-steps", "2",
                           "--batch-size", "4", "--json")
    chat = card["result"]["events"]["chat"]
    assert chat["questions"] == 12 and chat["events"]["feedback_read"] == 24
    assert chat["positive_sentences"] == 12 and chat["negative_sentences"] == 12
    assert "10 (question, helpful sentence) examples from the chat's feedback" in stderr
    # The two held-out questions' votes judge both selectors: one helpful sentence against
    # one voted down each.
    judged = card["metrics"]["chat_held_out"]
    assert judged["cosine"]["questions"] == 2 and judged["cosine"]["pairs"] == 2
    assert judged["cosine"]["accuracy"] == 1.0  # the asked topic's sentence is the closer
    assert judged["cross_encoder"]["pairs"] == 2
    assert judged["cross_encoder"]["accuracy"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert "sentence selection on 2 held-out chat questions" in stderr
    saved = json.loads((tmp_path / "reranker" / "ragrec-model.json").read_text())
    source = saved["lineage"]["reranker"]["data"]["source"]
    assert source.endswith("+ chat feedback (10 helpful sentences)"), source


def test_without_data_or_traffic_the_commands_say_what_to_give(es_url, monkeypatch, capsys,
                                                               tmp_path, index_name):
    from ragrec import cli

    monkeypatch.setenv("ES_URL", es_url)
    monkeypatch.delenv("RAGREC_DEBUG", raising=False)
    out = str(tmp_path / "v")
    cases = [
        (["train", "embedder", "--out", out],
         "ragrec: error: nothing to learn from: give --dataset (judged queries) or --events "
         "ALIAS (the deployment's clicks)"),
        (["eval", "--model", "base"],
         "ragrec: error: ragrec eval needs --dataset (judged queries) or --events ALIAS "
         "(held-out traffic)"),
        (["train", "embedder", "--events", index_name, "--index", index_name, "--out", out],
         f"ragrec: error: 0 queries with clicks to train on in the clicks of --events "
         f"{index_name}; training needs at least 5: let more traffic in (impressions and "
         f"clicks with their trace_id and position, POST /events), or train on judged "
         f"queries (--dataset)"),
        (["eval", "--events", index_name, "--model", "base"],
         f"ragrec: error: {index_name}-events has no held-out traffic to evaluate on (0 "
         f"sessions, 0 queries: at least 5 queries with clicks are needed, the fifth first "
         f"seen last held out)"),
    ]
    for argv, line in cases:
        assert cli.main(argv) == 2, argv
        assert capsys.readouterr().err.strip().splitlines()[-1] == line
