"""model_rollout with dag.test() against a real model server (its admin route) and a file://
registry: a good version is registered, deployed, smoke-tested, promoted and the resync is
triggered; a version failing its smoke test is rolled back on the endpoint and never
promoted. (The rollout's reindex hand-off runs under the real scheduler: see
``test_scheduler_run.py``.)"""

from __future__ import annotations

import httpx
import pytest
from servers.model_server_process import ModelServerProcess

from dags.conftest import MODEL_ADMIN, MODEL_TOKEN, load_dag, point_dags_at


@pytest.fixture(scope="module")
def versions_to_roll(tmp_path_factory):
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.store import write_bundle

    root = tmp_path_factory.mktemp("rollout-models")
    return {v: write_bundle(root / v, "kb-minilm", f"kb-minilm-{v}", base_model_dir()).root
            for v in ("v1", "v2", "v3")}


@pytest.fixture
def endpoint(versions_to_roll, airflow_db, es_url, monkeypatch, tmp_path):
    with ModelServerProcess(str(versions_to_roll["v1"]), MODEL_TOKEN, MODEL_ADMIN) as server:
        host, port = es_url.removeprefix("http://").split(":")
        point_dags_at(monkeypatch, host, int(port), server, tmp_path, admin=True)
        monkeypatch.setenv("RAGREC_REGISTRY", (tmp_path / "registry").as_uri())
        yield server


def _states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _serving(server) -> str:
    return httpx.get(f"{server.base}/health").json()["version"]


def test_a_good_version_is_deployed_smoke_tested_and_promoted(endpoint, versions_to_roll):
    from ragrec.airflow.rollout_steps import registry

    dag = load_dag("model_rollout")
    run = dag.test(run_conf={"model_uri": str(versions_to_roll["v2"]), "reindex": False})
    states = _states(run)
    assert run.state == "success", states
    assert states["reindex_with_new_model"] == "skipped"
    assert states["trigger_recommendation_resync"] == "success"
    assert states["roll_back_endpoint"] == "skipped"
    assert _serving(endpoint) == "kb-minilm-v2"
    data = registry().show("kb-minilm")
    assert data["stages"] == {"candidate": "kb-minilm-v2", "production": "kb-minilm-v2"}

    # Re-running the same rollout is harmless: the version is already registered.
    again = dag.test(run_conf={"model_uri": str(versions_to_roll["v2"]), "reindex": False})
    assert again.state == "success", _states(again)


def test_a_failed_smoke_test_rolls_the_endpoint_back(endpoint, versions_to_roll):
    from ragrec.airflow.rollout_steps import registry

    dag = load_dag("model_rollout")
    for task in dag.tasks:
        task.retries = 0
    # A latency budget no server meets: the smoke test must fail after the deploy.
    run = dag.test(run_conf={"model_uri": str(versions_to_roll["v3"]), "reindex": False,
                             "max_p99_ms": 1})
    states = _states(run)
    assert run.state == "failed"
    assert states["deploy"] == "success" and states["smoke_test"] == "failed"
    assert states["promote"] == "upstream_failed"
    assert states["roll_back_endpoint"] == "success"
    assert _serving(endpoint) == "kb-minilm-v1"
    data = registry().show("kb-minilm")
    assert data["stages"].get("production") is None
    assert data["stages"]["candidate"] == "kb-minilm-v3"
