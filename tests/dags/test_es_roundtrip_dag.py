"""es_roundtrip runs end to end with dag.test(), through the provider's hook, on real ES."""

from __future__ import annotations

import json

from conftest import ROOT


def _load_dag(dag_id):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def test_es_roundtrip_writes_and_reads_through_the_connection(
    airflow_db, es_url, es, index_name, monkeypatch
):
    host, port = es_url.removeprefix("http://").split(":")
    monkeypatch.setenv(
        "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT",
        json.dumps({"conn_type": "elasticsearch", "host": host, "port": int(port),
                    "schema": "http"}),
    )
    monkeypatch.delenv("ES_URL", raising=False)
    dag = _load_dag("es_roundtrip")

    run = dag.test(run_conf={"index": index_name})

    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"write": "success", "read": "success"}
    hits = es.search(index=index_name, query={"term": {"probe_id.keyword": run.run_id}})
    assert hits["hits"]["total"]["value"] == 1


def test_es_roundtrip_fails_when_the_connection_points_nowhere(
    airflow_db, index_name, monkeypatch
):
    from ragrec.dev.es_node.node import free_port

    monkeypatch.setenv(
        "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT",
        json.dumps({"conn_type": "elasticsearch", "host": "127.0.0.1", "port": free_port(),
                    "extra": {"request_timeout": 2}}),
    )
    dag = _load_dag("es_roundtrip")
    for task in dag.tasks:
        task.retries = 0  # the failure itself is under test, not the retry policy

    run = dag.test(run_conf={"index": index_name})

    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["write"] == "failed"
    assert states["read"] == "upstream_failed"
