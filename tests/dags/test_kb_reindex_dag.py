"""kb_reindex end to end with dag.test() on the real node and the real model server: a
rebuild goes live through the retrieval gate; a deliberately worse model is refused with the
alias unchanged; an Elasticsearch outage in the middle of the build leaves the alias alone
and the retry succeeds once Elasticsearch is back."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from servers.tcp_proxy import TcpProxy

from conftest import ROOT
from dags.conftest import load_dag as _load_dag
from dags.conftest import point_dags_at

SHARED = ROOT.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")


@pytest.fixture(scope="module")
def golden_kb(tmp_path_factory):
    """60 SciFact abstracts as files, and a golden set of 30 test queries judged on them."""
    from ragrec.eval.datasets import BeirDataset

    data = BeirDataset(SHARED / "scifact")
    qrels = data.qrels("test")
    chosen = sorted(qrels)[:30]
    relevant = {d for q in chosen for d in qrels[q]}
    corpus = {d["_id"]: d for d in data.corpus()}
    others = sorted(set(corpus) - relevant)
    keep = sorted(relevant) + random.Random(5).sample(others, 60 - len(relevant))
    source = tmp_path_factory.mktemp("golden-kb-source")
    for doc_id in keep:
        doc = corpus[doc_id]
        (source / f"{doc_id}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    golden = tmp_path_factory.mktemp("golden-set")
    (golden / "qrels").mkdir()
    queries = data.queries()
    (golden / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": queries[q]}) + "\n" for q in chosen))
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q in chosen
                                            for d, g in qrels[q].items()]
    (golden / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return source, golden


@pytest.fixture(scope="module")
def worse_model(tmp_path_factory):
    """The base model with its weights drowned in noise: a real model, much worse at this."""
    import torch
    from safetensors.torch import load_file, save_file

    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.store import write_bundle

    root = tmp_path_factory.mktemp("worse-model")
    layout = write_bundle(root / "v", "kb-noisy", "kb-noisy-v1", base_model_dir())
    weights_path = layout.embedder_dir / "model.safetensors"
    weights = load_file(str(weights_path))
    generator = torch.Generator().manual_seed(3)
    noisy = {k: v + torch.randn(v.shape, generator=generator) * v.float().std() * 0.6
             if v.is_floating_point() and v.numel() > 1 else v for k, v in weights.items()}
    save_file(noisy, str(weights_path))
    return layout.root


@pytest.fixture
def connections(dag_connections):
    return dag_connections


def _connect(monkeypatch, host, port, model_server, tmp_path):
    point_dags_at(monkeypatch, host, port, model_server, tmp_path)


def _fast_retries(dag, retries: int = 3):
    for task in dag.tasks:
        task.retries = retries
        task.retry_delay = timedelta(seconds=1)
        task.max_retry_delay = timedelta(seconds=2)


def _run(dag, source, golden, alias, **params):
    run = dag.test(run_conf={"source": source.as_uri(), "index": alias,
                             "golden_dir": str(golden), "gate_margin": 0.02, **params})
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    return run, tries


def test_rebuild_goes_live_and_a_worse_model_is_refused(connections, golden_kb, worse_model,
                                                         es, index_name, cleanup_alias):
    from ragrec.indexing import versions
    from ragrec.retrieval import SearchSpec

    source, golden = golden_kb
    cleanup_alias(index_name)
    dag = _load_dag("kb_reindex")

    spec = SearchSpec("hybrid", "convex", 0.4).to_dict()
    first, tries = _run(dag, source, golden, index_name,
                        search_spec={"mode": "hybrid", "fusion": "convex", "dense_weight": 0.4})
    assert first.state == "success", tries
    live = versions.current_version(es, index_name)
    meta = versions.index_meta(es, live)
    assert meta["model_version"] == "all-minilm-l6-v2-base"
    assert meta["golden"]["ndcg_at_10"] > 0.5 and meta["golden"]["queries"] == 30
    # What was gated is what is served: the spec is recorded with the version at go-live.
    assert meta["golden"]["spec"] == spec and meta["search_spec"] == spec
    assert es.count(index=index_name)["count"] >= 60

    # A second rebuild with the same model passes the gate (under the spec the live version
    # serves), copies every vector, swaps.
    second, tries = _run(dag, source, golden, index_name)
    assert second.state == "success", tries
    assert versions.current_version(es, index_name) != live
    assert versions.index_meta(es, index_name)["search_spec"] == spec
    assert versions.list_versions(es, index_name) == sorted([live, versions.current_version(
        es, index_name)])
    live = versions.current_version(es, index_name)

    refused, tries = _run(dag, source, golden, index_name, model_uri=str(worse_model))
    assert refused.state == "failed"
    assert tries["retrieval_gate"] == ("failed", 1)  # a verdict, not retried
    assert tries["swap_alias"][0] == "upstream_failed"
    assert versions.current_version(es, index_name) == live
    assert versions.index_meta(es, index_name)["model_version"] == "all-minilm-l6-v2-base"
    assert versions.list_versions(es, index_name)[-1] == live  # the candidate is gone


def test_an_outage_mid_build_leaves_the_alias_and_the_retry_succeeds(
        airflow_db, es_url, es, model_server, golden_kb, index_name, cleanup_alias,
        monkeypatch, tmp_path):
    from ragrec.indexing import versions

    source, golden = golden_kb
    cleanup_alias(index_name)
    host, port = es_url.removeprefix("http://").split(":")
    dag = _load_dag("kb_reindex")
    _fast_retries(dag, retries=0)

    _connect(monkeypatch, host, int(port), model_server, tmp_path)
    first, tries = _run(dag, source, golden, index_name)
    assert first.state == "success", tries
    live = versions.current_version(es, index_name)

    # Elasticsearch goes away at the first bulk request of the build and stays away.
    down = TcpProxy(host, int(port), outage_on=b"/_bulk", outage_seconds=None)
    _connect(monkeypatch, "127.0.0.1", down.port, model_server, tmp_path)
    failed, tries = _run(dag, source, golden, index_name)
    down.close()
    assert down.outages == 1
    assert failed.state == "failed" and tries["build_candidate"][0] == "failed"
    assert versions.current_version(es, index_name) == live

    # This time it comes back after 3 s: the build's retry goes through and swaps.
    _fast_retries(dag, retries=3)
    flaky = TcpProxy(host, int(port), outage_on=b"/_bulk", outage_seconds=3.0)
    _connect(monkeypatch, "127.0.0.1", flaky.port, model_server, tmp_path)
    recovered, tries = _run(dag, source, golden, index_name)
    flaky.close()
    assert flaky.outages == 1
    assert recovered.state == "success", tries
    assert tries["build_candidate"][1] >= 2
    new_live = versions.current_version(es, index_name)
    assert new_live != live
    assert es.count(index=index_name)["count"] == es.count(index=live)["count"]
    assert versions.list_versions(es, index_name) == sorted([live, new_live])


class LexicalReranker:
    """A plain reranker: the share of the query's words a passage holds (``sign`` -1: the
    same judgement turned upside down, a deliberately harmful reranker)."""

    def __init__(self, sign: float):
        self.sign = sign

    def score(self, query: str, texts: list[str]):
        import re

        import numpy as np

        words = set(re.findall(r"\w+", query.lower()))
        return np.array([self.sign * len(words & set(re.findall(r"\w+", t.lower())))
                         / max(1, len(words)) for t in texts], dtype=np.float32)


def test_the_gate_scores_the_served_spec_and_refuses_a_harmful_reranker(
        golden_kb, worse_model, es, index_name, cleanup_alias, embedder):
    """Candidate: a better embedder (its dense-only golden score rises) with a harmful
    reranker; served with rerank, its nDCG@10 falls: the gate, which scores the served spec,
    refuses it, where a dense-only gate would have let it through."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.jobs.reindex import GateSettings, build, gate, score, swap
    from ragrec.models.uris import load_layout
    from ragrec.retrieval import PinnedModels, SearchSpec
    from ragrec.sources import open_source

    source, golden = golden_kb
    cleanup_alias(index_name)
    noisy = encoder_for(load_layout(str(worse_model)).embedder_dir)
    tokenizer = ModelTokenizer(base_model_dir())
    live = build(es, noisy, tokenizer, open_source(str(source)), index_name)["index"]
    swap(es, index_name, live, keep=2)
    candidate = build(es, embedder, tokenizer, open_source(str(source)), index_name)["index"]
    live_models = PinnedModels(noisy, LexicalReranker(+1))
    candidate_models = PinnedModels(embedder, LexicalReranker(-1))

    dense = GateSettings(golden, SearchSpec("dense", depth=50))
    dense_live, dense_candidate = (score(es, live, live_models, dense),
                                   score(es, candidate, candidate_models, dense))
    assert dense_candidate["ndcg_at_10"] > dense_live["ndcg_at_10"] + 0.1
    assert gate(dense_candidate, dense_live, 0.02)["passed"]

    served = GateSettings(golden, SearchSpec("hybrid", depth=50, rerank_top=20,
                                             rerank_weight=0.7))
    live_score = score(es, live, live_models, served)
    candidate_score = score(es, candidate, candidate_models, served)
    assert candidate_score["spec"] == served.spec.to_dict()
    assert candidate_score["mode"] == "hybrid+rerank"
    verdict = gate(candidate_score, live_score, 0.02)
    print(f"[gate] nDCG@10 on {live_score['queries']} golden queries - dense only: live "
          f"{dense_live['ndcg_at_10']:.4f}, candidate {dense_candidate['ndcg_at_10']:.4f}; "
          f"served {served.spec.label}: live {live_score['ndcg_at_10']:.4f}, candidate "
          f"{candidate_score['ndcg_at_10']:.4f}")
    assert not verdict["passed"], verdict
    assert candidate_score["ndcg_at_10"] < live_score["ndcg_at_10"] - 0.02
