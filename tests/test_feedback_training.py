"""Learning from the deployment's own traffic, on the real node with no judged queries:
clicks logged against the index train a query encoder (``ragrec train embedder --events``),
``ragrec eval --events`` scores a version on held-out traffic, and the label-free gate
refuses a candidate that ranks the clicked documents worse than the live version."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from beir_sets import write_tiny_beir

from conftest import ROOT, fresh_cache

EXAMINATION = (0.68, 0.61, 0.48, 0.34, 0.28)


def _ragrec(env, *args):
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def _log_traffic(es, alias, events_alias, dataset, clicked_doc, sessions=8, seed=5):
    """Every query of the set searched ``sessions`` times on ``alias`` (dense, top 5, a fifth
    of the answers explored), clicked by a position-based model on ``clicked_doc(qid)``,
    the query first seen on day ``n`` (its place in the set) and seen again the next days;
    the events land in ``events_alias``-events."""
    from ragrec.api import events as event_log
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.feedback.exploration import Explorer, apply
    from ragrec.retrieval import PinnedModels, Searcher, SearchSpec

    rng = random.Random(seed)
    explorer = Explorer(0.2, random.Random(seed + 1))
    searcher = Searcher(es, PinnedModels(encoder_for(base_model_dir())))
    queries = dataset.queries()
    rows, start = [], datetime(2026, 11, 1, 9, tzinfo=UTC)
    for day, qid in enumerate(sorted(queries)):
        ranked = [h.doc_id for h in searcher.search(alias, queries[qid], SearchSpec("dense"),
                                                    k=5).hits]
        for session in range(sessions):
            shown = apply(ranked, explorer.draw(len(ranked)))
            when = start + timedelta(days=day + session // 3, minutes=session)
            common = {"user_id": f"user-{session}", "query": queries[qid], "ts": when,
                      "trace_id": f"{events_alias}-{qid}-{session}", "surface": "search"}
            for position, doc in enumerate(shown):
                rows.append({**common, "doc_id": doc, "type": "impression",
                             "position": position})
                attractive = 1.0 if doc.removesuffix(".md") == clicked_doc(qid) else 0.05
                if rng.random() < EXAMINATION[position] * attractive:
                    rows.append({**common, "doc_id": doc, "type": "click",
                                 "position": position})
    event_log.log_events(es, events_alias, event_log.normalise_events(rows))


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory):
    return write_tiny_beir(tmp_path_factory.mktemp("tiny-beir-events"))


def test_train_and_evaluate_from_traffic_and_gate_without_labels(
        tiny_beir, tmp_path, project_env, es_url, es, index_name, cleanup_alias):
    from ragrec.chunking import ModelTokenizer
    from ragrec.config import cache_dir
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.eval.datasets import BeirDataset
    from ragrec.eval.runner import corpus_folder, ensure_index
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
    dataset = BeirDataset(tiny_beir)
    ensure_index(es, index_name, dataset, encoder_for(base_model_dir()), base_model_dir(),
                 cache_dir(), show_progress=False)
    judged = {q: next(iter(docs)) for split in ("train", "test")
              for q, docs in dataset.qrels(split).items()}
    _log_traffic(es, index_name, index_name, dataset, judged.get)
    # A second log that clicks another topic's document: what a broken model learns from.
    topics = sorted({d for d in judged.values()})
    _log_traffic(es, index_name, adversary, dataset,
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
