"""kb_ingest end to end with dag.test(): real ES node, the real model server behind the
``eas_default`` Connection, a file:// source of real documents (tricky formats included) and
SciFact abstracts whose modification times fall into two hourly intervals."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import pytest

from conftest import ROOT
from dags.conftest import SMALL_KB
from dags.conftest import load_dag as _load_dag

SHARED = ROOT.parent / "shared" / "data"
INTERVAL_A = datetime(2026, 3, 1, 0, 10, tzinfo=UTC)  # run of 01:00 covers [00:00, 01:00)
INTERVAL_B = datetime(2026, 3, 1, 1, 20, tzinfo=UTC)  # run of 02:00 covers [01:00, 02:00)

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")


def _set_mtime(path, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


@pytest.fixture(scope="module")
def kb_source(tmp_path_factory):
    """Small real documents (<= 60 KB, every format, corrupt and encrypted ones too) modified
    in interval A, and 30 SciFact abstracts modified in interval B."""
    from ragrec.eval.datasets import BeirDataset, write_corpus_as_files

    root = tmp_path_factory.mktemp("kb-source")
    docs = sorted(p for p in (SHARED / "docs").iterdir()
                  if p.is_file() and p.stat().st_size <= 60_000
                  and p.name not in ("README.md", "SOURCE.md"))
    for path in docs:
        shutil.copyfile(path, root / path.name)
        _set_mtime(root / path.name, INTERVAL_A)
    scifact = root / "scifact"
    write_corpus_as_files(BeirDataset(SHARED / "scifact"), scifact, every=170)
    for path in scifact.iterdir():
        _set_mtime(path, INTERVAL_B)
    return root


@pytest.fixture
def connections(dag_connections):
    return dag_connections


def _run(dag, source, alias, logical_date, **params):
    run = dag.test(logical_date=logical_date,
                   run_conf={"source": source.as_uri(), "index": alias, "batch_size": 16,
                             **params})
    states = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(ti.state)
    return run, states


def _xcom(run, task_id, key="return_value"):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id,
                                                  task_id=task_id, key=key).all()
        values = [XComModel.deserialize_value(r) for r in rows]
    assert len(values) == 1, f"{task_id}/{key}: {len(values)} values"
    return values[0]


def _content(es, alias):
    """Everything that defines the index's content, independent of when it was written."""
    es.indices.refresh(index=alias)
    rows = set()
    for hit in __import__("elasticsearch").helpers.scan(
            es, index=alias, _source=["doc_id", "chunk_no", "content_hash", "model_version"]):
        s = hit["_source"]
        rows.add((hit["_id"], s["doc_id"], s["chunk_no"], s["content_hash"], s["model_version"]))
    return rows


def _quarantined(es, alias):
    from ragrec.indexing.quarantine_store import read_quarantine

    return {d: (r["stage"], r["reason"]) for d, r in read_quarantine(es, alias).items()}


def test_two_interval_backfill_equals_one_full_run_and_reruns_are_no_ops(
        connections, kb_source, es, index_name, cleanup_alias):
    dag = _load_dag("kb_ingest")
    backfilled, full = f"{index_name}-bf", f"{index_name}-full"
    cleanup_alias(backfilled)
    cleanup_alias(full)
    hour_1, hour_2 = datetime(2026, 3, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, 2, tzinfo=UTC)

    first, states = _run(dag, kb_source, backfilled, hour_1)
    assert first.state == "success", states
    assert states["ingest_batch"] == {"success"}
    plan_a = {**_xcom(first, "plan", "plan"), "batches": _xcom(first, "plan")}
    # The first run of an index has no lower bound; the interval's end still applies.
    assert plan_a["since"] is None and plan_a["before"].startswith("2026-03-01T01:00")
    scifact_keys = {p.relative_to(kb_source).as_posix() for p in (kb_source / "scifact").iterdir()}
    all_keys = {p.relative_to(kb_source).as_posix() for p in kb_source.rglob("*")
                if p.is_file() and not p.name.startswith(".")}
    # Key ranges, not keys, travel between tasks; each batch lists its range again.
    assert plan_a["to_ingest"] == len(all_keys - scifact_keys)
    assert max(b["documents"] for b in plan_a["batches"]) <= 16
    assert all(set(b) == {"after", "last", "documents", "since", "before"}
               for b in plan_a["batches"])

    second, states = _run(dag, kb_source, backfilled, hour_2)
    assert second.state == "success", states
    plan_b = {**_xcom(second, "plan", "plan"), "batches": _xcom(second, "plan")}
    assert plan_b["since"].startswith("2026-03-01T01:00")
    assert plan_b["to_ingest"] == len(scifact_keys)
    assert plan_b["actions"] == {"new": len(scifact_keys)}
    published = _xcom(second, "validate_and_publish")
    assert published["alias"] == backfilled and published["model_version"]

    whole, states = _run(dag, kb_source, full, hour_2, all_documents=True)
    assert whole.state == "success", states
    assert _content(es, backfilled) == _content(es, full)
    assert _quarantined(es, backfilled) == _quarantined(es, full)
    quarantined = _quarantined(es, full)
    assert "pdf__password.pdf" in quarantined and "fake-text-all-whitespace.txt" in quarantined

    # Re-running interval A changes nothing: every document is skipped by fingerprint.
    before = _content(es, backfilled)
    again, states = _run(dag, kb_source, backfilled, hour_1)
    assert again.state == "success", states
    summaries = [s for s in [_xcom(again, "validate_and_publish")]]
    assert summaries[0]["docs_new"] == 0 and summaries[0]["docs_changed"] == 0
    assert summaries[0]["chunks_indexed"] == 0
    assert _content(es, backfilled) == before

    hits = es.search(index=full, query={"match": {"text": "Stanley Cup"}})["hits"]["hits"]
    assert hits and hits[0]["_source"]["doc_id"].startswith("stanley-cups")


def test_a_deleted_document_is_pruned_and_an_empty_interval_still_validates(
        connections, kb_source, es, index_name, cleanup_alias, tmp_path):
    dag = _load_dag("kb_ingest")
    cleanup_alias(index_name)
    source = tmp_path / "small"
    source.mkdir()
    for name in ("simple-table.md", "codeblock.md", "fake-text.txt"):
        shutil.copyfile(kb_source / name, source / name)
        _set_mtime(source / name, INTERVAL_A)
    run, states = _run(dag, source, index_name, datetime(2026, 3, 1, 1, tzinfo=UTC))
    assert run.state == "success", states
    assert {r[1] for r in _content(es, index_name)} == {"simple-table.md", "codeblock.md",
                                                        "fake-text.txt"}

    (source / "codeblock.md").unlink()
    # Nothing was modified in this interval: no batch runs, the deletion is still pruned.
    run, states = _run(dag, source, index_name, datetime(2026, 3, 1, 5, tzinfo=UTC))
    assert run.state == "success", states
    assert states["ingest_batch"] == {"skipped"}
    assert _xcom(run, "prune_deleted")["docs_deleted"] == 1
    assert {r[1] for r in _content(es, index_name)} == {"simple-table.md", "fake-text.txt"}
    assert _xcom(run, "validate_and_publish")["documents"] == 2


def test_a_full_listing_indexes_documents_newer_than_the_runs_interval(
        connections, small_kb, es, index_name, cleanup_alias):
    """A manual run's interval is inferred as the last full hour; documents written since
    (a fresh checkout, an upload minutes ago) are left to the next interval unless the run
    asks for the full listing, which takes them now."""
    dag = _load_dag("kb_ingest")
    cleanup_alias(index_name)
    now = datetime.now(UTC)
    for path in small_kb.iterdir():
        _set_mtime(path, now)
    run, states = _run(dag, small_kb, index_name, now)
    assert run.state == "success", states
    assert _xcom(run, "plan", "plan")["documents"] == 0
    assert _xcom(run, "validate_and_publish")["documents"] == 0

    run, states = _run(dag, small_kb, index_name, now, all_documents=True)
    assert run.state == "success", states
    assert _xcom(run, "plan", "plan")["before"] is None
    assert {r[1] for r in _content(es, index_name)} == set(SMALL_KB)
    assert _xcom(run, "validate_and_publish")["documents"] == len(SMALL_KB)
