"""What the DAG tests share: the real model server (base model) and Connections pointing
the DAGs at it and at the harness's Elasticsearch node."""

from __future__ import annotations

import json

import pytest
from servers.model_server_process import ModelServerProcess

from conftest import ROOT

MODEL_TOKEN, MODEL_ADMIN = "dag-model-token", "dag-model-admin"
SMALL_KB = {
    "travel.md": "# Travel\n\nHotel and flight costs are reimbursed within thirty days.\n",
    "vpn.md": "# VPN\n\nThe VPN client drops at airports; switch to the TCP gateway.\n",
    "leave.txt": "Parental leave lasts twenty weeks and is fully paid.\n",
}


@pytest.fixture
def small_kb(tmp_path):
    """A folder of three short documents (a fresh copy per test)."""
    folder = tmp_path / "kb"
    folder.mkdir()
    for name, text in SMALL_KB.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="session")
def model_server():
    with ModelServerProcess("base", MODEL_TOKEN, MODEL_ADMIN) as server:
        yield server


def load_dag(dag_id):
    """The DAG as the scheduler parses it, with retry delays cut to a second (the retry
    counts stay: tests that exercise retries still get them)."""
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags[dag_id]
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)
        task.max_retry_delay = timedelta(seconds=2)
    return dag


def set_connection(monkeypatch, name: str, value: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(value))


def point_dags_at(monkeypatch, es_host: str, es_port: int, model_server, tmp_path,
                  admin: bool = False) -> None:
    """elasticsearch_default -> the node (or a proxy), eas_default -> the model server."""
    set_connection(monkeypatch, "elasticsearch_default", {
        "conn_type": "elasticsearch", "host": es_host, "port": es_port, "schema": "http",
        "extra": {"request_timeout": 10}})
    extra = {"admin_token": MODEL_ADMIN} if admin else {}
    set_connection(monkeypatch, "eas_default", {
        "conn_type": "http", "host": model_server.predict_url, "password": MODEL_TOKEN,
        "extra": extra})
    monkeypatch.setenv("RAGREC_QUALITY_DOCS", str(tmp_path / "data-docs"))
    monkeypatch.delenv("ES_URL", raising=False)
    from ragrec.airflow import runtime

    runtime.encoder.cache_clear()


@pytest.fixture
def dag_connections(airflow_db, es_url, model_server, monkeypatch, tmp_path):
    host, port = es_url.removeprefix("http://").split(":")
    point_dags_at(monkeypatch, host, int(port), model_server, tmp_path)
    yield
    from ragrec.airflow import runtime

    runtime.encoder.cache_clear()
