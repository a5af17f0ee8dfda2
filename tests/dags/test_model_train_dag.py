"""model_train with dag.test() on a small BEIR set and the real node: the embedder and the
reranker are fine-tuned inside a step budget into one version directory, evaluated in every
mode and registered as a candidate; a train split too small to learn from fails the run at
once with the reason, without retries."""

from __future__ import annotations

import json

import pytest
from beir_sets import write_tiny_beir

from dags.conftest import load_dag
from ragrec.models.budget import DEFAULT_MAX_MINUTES


@pytest.fixture
def registry_env(dag_connections, monkeypatch, tmp_path):
    monkeypatch.setenv("RAGREC_REGISTRY", (tmp_path / "registry").as_uri())


def _states(run) -> dict:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_a_budgeted_training_run_registers_an_evaluated_candidate(registry_env, tmp_path,
                                                                  index_name):
    from ragrec.airflow.rollout_steps import registry

    dataset = write_tiny_beir(tmp_path / "tiny")
    run = load_dag("model_train").test(run_conf={
        "dataset": str(dataset), "name": "kb-tiny", "index": index_name, "max_steps": 1,
        "out_root": str(tmp_path / "models")})
    states = _states(run)
    assert run.state == "success", states
    assert set(states.values()) == {"success"}
    data = registry().show("kb-tiny")
    version = data["stages"]["candidate"]
    entry = data["versions"][version]
    assert entry["reranker"] is True
    for kind in ("embedder", "reranker"):  # the form's budget reached each job
        result = entry["metrics"][kind]["result"]
        assert result["steps"] == 1 and result["budget"]["max_steps"] == 1
        assert result["budget"]["max_minutes"] == DEFAULT_MAX_MINUTES
        assert result["sample"] == {"pairs": 5, "of_pairs": 5, "queries": 5, "of_queries": 5}
    assert set(entry["evaluation"]["metrics"]) == {"bm25", "dense", "hybrid", "hybrid-convex",
                                                   "hybrid+rerank"}
    folder = next((tmp_path / "models" / "kb-tiny").iterdir())
    card = json.loads((folder / "ragrec-model.json").read_text())
    assert card["version"] == version and card["lineage"]["embedder"]["data"]["pairs"] == 5


def test_a_train_split_too_small_fails_the_run_without_retries(registry_env, tmp_path,
                                                               index_name):
    dataset = write_tiny_beir(tmp_path / "small", ("vpn", "payroll"))
    run = load_dag("model_train").test(run_conf={
        "dataset": str(dataset), "index": index_name, "out_root": str(tmp_path / "models")})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert tis["plan"].state == "success"
    assert tis["train_embedder"].state == "failed"
    assert tis["train_embedder"].try_number == 1  # bad data: no retry can fix it
    assert tis["register_candidate"].state != "success"
