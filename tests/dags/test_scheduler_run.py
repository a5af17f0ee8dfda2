"""The DAGs under a real Airflow 3 deployment (``airflow standalone``: API server, scheduler
with the LocalExecutor, DAG processor, triggerer), driven from the CLI as an operator would,
through ``python -m ragrec.dev.scheduler_run`` (the documented script). One deployment (each
costs minutes on 2 cores) runs, in turn: an ``airflow backfill create`` of ``kb_ingest`` over
two hourly intervals into one index; a triggered ``kb_ingest`` into another; then a
``model_rollout`` whose reindex hand-off (TriggerDagRunOperator, wait for completion) runs
``kb_reindex`` on that second index for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from servers.model_server_process import ModelServerProcess

from conftest import ROOT
from dags.conftest import MODEL_ADMIN, MODEL_TOKEN, SMALL_KB

BACKFILL = ("2026-03-01T00:00:00+00:00", "2026-03-01T01:00:00+00:00")


def _env(es_url: str, folder, model_server=None) -> dict:
    host, port = es_url.removeprefix("http://").split(":")
    env = os.environ.copy()
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    # A metadata DB of its own: the session's holds dag.test() runs at the same logical
    # dates, which a backfill would take over (reprocess) instead of creating its own.
    env["AIRFLOW_HOME"] = str(folder / "airflow-home")
    env.pop("ES_URL", None)
    env["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"] = json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http"})
    env["RAGREC_QUALITY_DOCS"] = str(folder / "data-docs")
    if model_server is not None:
        env["AIRFLOW_CONN_EAS_DEFAULT"] = json.dumps(
            {"conn_type": "http", "host": model_server.predict_url, "password": MODEL_TOKEN,
             "extra": {"admin_token": MODEL_ADMIN}})
    return env


def _scheduler_run(env: dict, *args: str) -> list[dict]:
    """Every run's outcome; a run that failed is left to the test that reads it (the exit
    status is then 1), a script that printed none is an error here."""
    result = subprocess.run(
        [sys.executable, "-m", "ragrec.dev.scheduler_run", *args, "--timeout", "1200",
         "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1400)
    printed = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert result.returncode in (0, 1) and printed, \
        result.stderr[-3000:] + result.stdout[-2000:]
    return json.loads(printed[-1])


def _states(outcome: dict) -> dict:
    """(task_id, map index) -> state; -1 for an unmapped task."""
    return {(t["task_id"], int(t["map_index"] if t["map_index"] not in (None, "") else -1)):
            t["state"] for t in outcome["tasks"]}


def _doc_ids(es, alias: str) -> set[str]:
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=100, _source=["doc_id"])["hits"]["hits"]
    return {h["_source"]["doc_id"] for h in hits}


def _kb(folder, hours: dict | None = None):
    folder.mkdir(parents=True)
    for name, text in SMALL_KB.items():
        (folder / name).write_text(text)
        if hours:
            stamp = datetime(2026, 3, 1, hours[name], 30, tzinfo=UTC).timestamp()
            os.utime(folder / name, (stamp, stamp))
    return folder


def _golden_set(folder):
    """Three questions judged on SMALL_KB (BEIR layout; ids are the file stems)."""
    (folder / "qrels").mkdir(parents=True)
    queries = {"q1": ("who pays for my hotel", "travel"),
               "q2": ("vpn disconnects at the airport", "vpn"),
               "q3": ("how long is parental leave", "leave")}
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": q, "text": text}) + "\n" for q, (text, _) in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{doc}\t1\n" for q, (_, doc) in queries.items()))
    return folder


@pytest.fixture(scope="module")
def deployment(es_url, es, tmp_path_factory):
    """One ``scheduler_run``: kb_ingest backfilled over 00:00 and 01:00 into ``backfilled``
    (documents modified at 00:30, 00:30 and 01:30), then, into ``live``, kb_ingest
    triggered with v1 (served by the endpoint) and model_rollout of v2 with a reindex."""
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.store import write_bundle

    folder = tmp_path_factory.mktemp("scheduler-run")
    suffix = uuid.uuid4().hex[:8]
    names = {"backfilled": f"ragrec-test-backfill-{suffix}",
             "live": f"ragrec-test-rollout-{suffix}"}
    versions = {v: write_bundle(folder / "models" / v, "kb-minilm", f"kb-minilm-{v}",
                                base_model_dir()).root for v in ("v1", "v2")}
    hourly = _kb(folder / "kb-hourly", {"travel.md": 0, "vpn.md": 0, "leave.txt": 1})
    kb = _kb(folder / "kb")
    registry = (folder / "registry").as_uri()
    backfill = {"source": hourly.as_uri(), "index": names["backfilled"], "batch_size": 1}
    ingest = {"source": kb.as_uri(), "index": names["live"], "all_documents": True,
              "batch_size": 2}
    rollout = {"model_uri": str(versions["v2"]), "reindex": True,
               "eval_dataset": str(_golden_set(folder / "golden")), "index": names["live"],
               "source": kb.as_uri()}
    try:
        with ModelServerProcess(str(versions["v1"]), MODEL_TOKEN, MODEL_ADMIN) as server:
            env = {**_env(es_url, folder, server), "RAGREC_REGISTRY": registry}
            outcomes = _scheduler_run(
                env, "kb_ingest", "kb_ingest", "model_rollout", "--backfill", *BACKFILL,
                "--conf", json.dumps(backfill), "--conf", json.dumps(ingest),
                "--conf", json.dumps(rollout), "--report", "kb_reindex")
            serving = httpx.get(f"{server.base}/health").json()["version"]
        yield {"outcomes": outcomes, "serving": serving, "index": names,
               "registry": registry}
    finally:
        for name in names.values():
            for concrete in es.indices.get(index=f"{name}*", allow_no_indices=True,
                                           expand_wildcards="all"):
                es.indices.delete(index=concrete, ignore_unavailable=True)
        shutil.rmtree(folder / "models", ignore_errors=True)


def test_a_backfill_over_two_intervals_ingests_each_intervals_documents(deployment, es):
    """``airflow backfill create`` for 00:00 and 01:00: the 00:00 run (the index's first)
    takes the documents modified before 01:00, the 01:00 run only the one modified in
    [01:00, 02:00)."""
    outcomes = [o for o in deployment["outcomes"] if o["run_id"].startswith("backfill__")]
    assert len(outcomes) == 2
    assert all(o["state"] == "success" for o in outcomes), outcomes
    batches = sorted(len([k for k in _states(o) if k[0] == "ingest_batch"]) for o in outcomes)
    assert batches == [1, 2]
    assert _doc_ids(es, deployment["index"]["backfilled"]) == set(SMALL_KB)


def test_a_rollout_hands_off_to_kb_reindex_and_waits_for_it(deployment, es):
    """kb_ingest, triggered, builds the live index with v1 (served by the endpoint) in mapped
    batches; rolling out v2 deploys it,
    triggers kb_reindex with it and waits; once the gate passed and the alias swapped, v2 is
    promoted: the index behind the alias records v2, the endpoint serves v2."""
    from ragrec.indexing import versions
    from ragrec.models.registry import Registry, open_store

    index_name = deployment["index"]["live"]
    triggered = [o for o in deployment["outcomes"] if not o["run_id"].startswith("backfill__")]
    by_dag = {o["dag_id"]: o for o in triggered}
    assert by_dag["kb_ingest"]["state"] == "success"
    ingest_states = _states(by_dag["kb_ingest"])
    assert set(ingest_states.values()) == {"success"}, ingest_states
    assert len([k for k in ingest_states if k[0] == "ingest_batch"]) == 2  # 3 docs, 2 a batch
    rollout_states = _states(by_dag["model_rollout"])
    assert by_dag["model_rollout"]["state"] == "success", rollout_states
    assert rollout_states[("reindex_with_new_model", -1)] == "success"
    assert rollout_states[("promote", -1)] == "success"
    assert rollout_states[("roll_back_endpoint", -1)] == "skipped"
    reindex = by_dag["kb_reindex"]
    assert reindex["run_id"] == f"rollout__{by_dag['model_rollout']['run_id']}"
    assert reindex["state"] == "success"
    assert _states(reindex)[("swap_alias", -1)] == "success"
    live = versions.current_version(es, index_name)
    assert versions.index_meta(es, live)["model_version"] == "kb-minilm-v2"
    assert deployment["serving"] == "kb-minilm-v2"
    assert _doc_ids(es, index_name) == set(SMALL_KB)
    stages = Registry(open_store(deployment["registry"])).show("kb-minilm")["stages"]
    assert stages["production"] == "kb-minilm-v2"
