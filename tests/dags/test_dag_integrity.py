"""Every DAG file imports cleanly, does no I/O at parse time, and follows project rules."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from conftest import ROOT

DAGS_FOLDER = ROOT / "dags"


class ParseTimeIO(AssertionError):
    pass


@pytest.fixture
def dagbag(monkeypatch):
    """Parse dags/ with the network and Airflow's Connection/Variable lookups forbidden."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    def forbidden(*_args, **_kwargs):
        raise ParseTimeIO("I/O at DAG parse time")

    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(forbidden))
    monkeypatch.setattr(Variable, "get", staticmethod(forbidden))
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_file_imports_without_errors_or_parse_time_io(dagbag):
    assert dagbag.import_errors == {}
    dag_files = {p.name for p in DAGS_FOLDER.glob("*.py")}
    parsed_files = {dag.fileloc.rsplit("/", 1)[-1] for dag in dagbag.dags.values()}
    assert dag_files and dag_files == parsed_files


def test_every_dag_has_tags_owner_docs_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            where = f"{dag_id}.{task.task_id}"
            assert task.owner not in ("", "airflow"), f"{where} has no owner"
            assert task.retries >= 2, f"{where} retries={task.retries}"
            assert task.retry_exponential_backoff, f"{where} retries without backoff"
            assert task.execution_timeout and task.execution_timeout <= timedelta(hours=6), where


def test_parse_guard_catches_a_dag_that_does_io_at_import(tmp_path, monkeypatch):
    """The guard above must be able to fail: a DAG that connects at import is reported."""
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "bad_dag.py").write_text(
        "import socket\n"
        "socket.create_connection(('127.0.0.1', 9))\n"
        "from airflow.sdk import dag\n"
        "@dag(schedule=None, tags=['x'])\n"
        "def bad():\n    pass\n"
        "bad()\n"
    )

    def forbidden(*_args, **_kwargs):
        raise ParseTimeIO("I/O at DAG parse time")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    bag = DagBag(dag_folder=str(tmp_path))
    assert any("I/O at DAG parse time" in err for err in bag.import_errors.values())
