"""kb_ingest under a real Airflow 3 deployment (``airflow standalone``: API server, scheduler
with the LocalExecutor, DAG processor, triggerer), triggered from the CLI as an operator
would, through ``python -m ragrec.airflow.scheduler_run`` (the documented script)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_kb_ingest_runs_once_under_the_scheduler(airflow_db, es_url, es, index_name,
                                                 cleanup_alias, project_env, small_kb,
                                                 tmp_path):
    cleanup_alias(index_name)
    source = small_kb
    host, port = es_url.removeprefix("http://").split(":")
    env = {**project_env, "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http"}),
        "RAGREC_QUALITY_DOCS": str(tmp_path / "data-docs")}
    env.pop("ES_URL", None)
    conf = {"source": source.as_uri(), "index": index_name, "all_documents": True,
            "batch_size": 2}
    result = subprocess.run(
        [sys.executable, "-m", "ragrec.airflow.scheduler_run", "kb_ingest", "--conf",
         json.dumps(conf), "--timeout", "600", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["state"] == "success"
    states = {(t["task_id"], t["map_index"]): t["state"] for t in outcome["tasks"]}
    assert set(states.values()) == {"success"}, states
    mapped = [k for k in states if k[0] == "ingest_batch"]
    assert len(mapped) == 2  # 3 documents in batches of 2
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == 3
