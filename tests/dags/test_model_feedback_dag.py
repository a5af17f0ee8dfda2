"""model_feedback with dag.test() on the real node: with too little traffic the run skips;
with enough, the query encoder is trained from the index's own clicks, evaluated beside the
live version on held-out traffic, registered as a candidate with those figures, and the
point reached is marked, so the next run waits for new traffic."""

from __future__ import annotations

import pytest
from beir_sets import write_tiny_beir
from click_logs import log_traffic

from dags.conftest import load_dag


@pytest.fixture
def registry_env(dag_connections, monkeypatch, tmp_path):
    monkeypatch.setenv("RAGREC_REGISTRY", (tmp_path / "registry").as_uri())


def _states(run) -> dict:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_the_loop_waits_for_traffic_then_registers_a_candidate_judged_on_it(
        registry_env, tmp_path, es, index_name, cleanup_alias):
    from ragrec.airflow.feedback_steps import MARK
    from ragrec.airflow.rollout_steps import registry
    from ragrec.config import cache_dir
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.eval.datasets import BeirDataset
    from ragrec.eval.runner import ensure_index
    from ragrec.recs.events import events_meta

    cleanup_alias(index_name)
    dataset = BeirDataset(write_tiny_beir(tmp_path / "tiny"))
    ensure_index(es, index_name, dataset, encoder_for(base_model_dir()), base_model_dir(),
                 cache_dir(), show_progress=False)
    conf = {"index": index_name, "min_sessions": 50, "max_steps": 2, "name": "kb-feedback",
            "out_root": str(tmp_path / "models"), "rollout": False}
    dag = load_dag("model_feedback")

    quiet = dag.test(run_conf=conf)  # no events index yet: nothing to learn from
    states = _states(quiet)
    assert quiet.state == "success", states
    assert states["new_traffic"] == "success" and states["train_embedder"] == "skipped"

    judged = {q: next(iter(docs)) for split in ("train", "test")
              for q, docs in dataset.qrels(split).items()}
    log_traffic(es, index_name, index_name, dataset, judged.get)  # 12 queries x 8 sessions
    run = dag.test(run_conf=conf)
    states = _states(run)
    assert run.state == "success", states
    assert states["register_candidate"] == "success"
    assert states["rollout_candidate"] == "skipped"  # rollout: false
    data = registry().show("kb-feedback")
    entry = data["versions"][data["stages"]["candidate"]]
    events = entry["metrics"]["embedder"]["result"]["events"]
    assert events["train_queries"] == 10 and events["held_out_queries"] == 2
    assert entry["lineage"]["embedder"]["data"]["source"].startswith("events (")
    traffic = entry["evaluation"]["traffic"]
    assert traffic["live"]["version"] == "all-minilm-l6-v2-base"
    assert traffic["candidate"]["version"] == data["stages"]["candidate"]
    assert traffic["gain"]["queries"] == traffic["live"]["queries"] == 2
    assert events_meta(es, index_name).get(MARK)

    again = dag.test(run_conf=conf)  # nothing logged since the mark
    states = _states(again)
    assert again.state == "success" and states["train_embedder"] == "skipped", states
