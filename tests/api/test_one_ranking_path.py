"""One ranking path: for one query and one spec, the API's hits, ``ragrec search --json`` and
the evaluation run's ranking are the same list; the spec recorded on an index version is the
one the API and the CLI serve by default."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from api.conftest import MODEL_TOKEN
from conftest import ROOT, fresh_cache

VPN = "the VPN keeps disconnecting at the airport"
SPEC = {"mode": "hybrid", "fusion": "convex", "dense_weight": 0.4, "depth": 40,
        "rerank_top": 4, "rerank_weight": 0.5}


def _cli_search(env, alias, *flags):
    run = subprocess.run([sys.executable, "-m", "ragrec.cli", "search", VPN, "--index", alias,
                          "--json", *flags], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


@pytest.fixture
def cli_env(project_env, es_url, api_model_server, tmp_path):
    return {**project_env, "ES_URL": es_url, "RAGREC_EMBED_URL": api_model_server.predict_url,
            "RAGREC_EMBED_TOKEN": MODEL_TOKEN, "RAGREC_CACHE_DIR": fresh_cache(tmp_path / "cache")}


def test_api_cli_and_evaluation_rank_alike(api, es, kb_alias, api_model_server, cli_env):
    from ragrec.eval.runner import Run
    from ragrec.models.resolver import ModelResolver, interactive_endpoint
    from ragrec.retrieval import Searcher, SearchSpec

    spec = SearchSpec.from_dict(SPEC)
    body = api.post("/search", json={"query": VPN, "k": 10, "mode": "hybrid",
                                     "fusion": "convex", "dense_weight": 0.4, "depth": 40,
                                     "rerank": True, "rerank_top": 4,
                                     "rerank_weight": 0.5}).json()
    assert body["spec"] == spec.to_dict() and body["reranked"] is True
    served = [h["id"] for h in body["hits"]]
    assert len(served) == 6 and sum("rerank" in h["scores"] for h in body["hits"]) == 4

    cli = _cli_search(cli_env, kb_alias, "--mode", "hybrid", "--fusion", "convex",
                      "--dense-weight", "0.4", "--depth", "40", "--rerank", "--rerank-top",
                      "4", "--rerank-weight", "0.5", "-k", "10")
    assert [h["id"] for h in cli["hits"]] == served
    assert cli["spec"] == body["spec"]
    assert [h["score"] for h in cli["hits"]] == pytest.approx([h["score"] for h in body["hits"]])

    models = ModelResolver(interactive_endpoint(api_model_server.predict_url, MODEL_TOKEN))
    run = Run(Searcher(es, models), kb_alias, {"q1": VPN}, spec.depth)
    evaluated = run.hits(spec)["q1"]
    assert [h.id for h in evaluated] == served
    # ... and evaluation collapses those very hits to documents.
    assert list(dict.fromkeys(h.doc_id for h in evaluated)) \
        == list(dict.fromkeys(h["doc_id"] for h in body["hits"]))


@pytest.fixture
def recorded_spec(es, kb_alias):
    from ragrec.indexing import versions
    from ragrec.jobs.reindex import record_spec
    from ragrec.retrieval import SearchSpec

    live = versions.current_version(es, kb_alias)
    spec = SearchSpec("hybrid", "convex", 0.6, depth=30, rerank_top=3, rerank_weight=0.8)
    record_spec(es, live, spec)
    yield spec
    versions.update_meta(es, live, search_spec=None)


def test_the_spec_recorded_at_go_live_is_served_by_default(api, kb_alias, recorded_spec,
                                                           cli_env):
    default = api.post("/search", json={"query": VPN}).json()
    assert default["spec"] == recorded_spec.to_dict() and default["reranked"] is True
    explicit = api.post("/search", json={"query": VPN, **{
        k: v for k, v in recorded_spec.to_dict().items() if k != "rerank_top"},
        "rerank": True, "rerank_top": 3}).json()
    assert [h["id"] for h in default["hits"]] == [h["id"] for h in explicit["hits"]]
    # A request's field overrides only that part of the served spec.
    no_rerank = api.post("/search", json={"query": VPN, "rerank": False}).json()
    assert no_rerank["spec"] == {**recorded_spec.to_dict(), "rerank_top": 0,
                                 "rerank_weight": 1.0}
    assert [h["id"] for h in _cli_search(cli_env, kb_alias)["hits"]] \
        == [h["id"] for h in default["hits"]]


@pytest.mark.parametrize("body,words", [
    ({"rerank": True, "rerank_top": 50, "depth": 10}, "cannot exceed depth"),
    ({"depth": 0}, "greater than or equal"),
])
def test_a_spec_that_cannot_rank_is_a_422(api, body, words):
    response = api.post("/search", json={"query": VPN, **body})
    assert response.status_code == 422 and words in response.text
