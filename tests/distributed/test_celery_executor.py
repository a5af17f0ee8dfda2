"""kb_ingest under the CeleryExecutor: a Redis broker (Debian's redis-server), the scheduler,
API server and DAG processor, and two Celery workers on loopback, each reporting its own
hostname (``ragrec.dev.local_airflow``). The mapped batches spread over both workers; the
``model_endpoint`` pool bounds how many embed at once across them, though the workers have
more slots; one worker is killed (SIGKILL, with the task it runs) in the middle of a batch:
the scheduler notices the lost heartbeat, the batch is retried on the other worker, and the
index ends up equal to a clean run's."""

from __future__ import annotations

import json
import random
from datetime import datetime

import pytest
from servers.model_server_process import ModelServerProcess

pytestmark = pytest.mark.distributed

TOKEN, ADMIN = "celery-model-token", "celery-model-admin"
WORDS = ("policy travel hotel flight vpn gateway leave payroll laptop badge office printer "
         "security password training benefit claim receipt manager approval").split()
HEARTBEAT_TIMEOUT = 30  # seconds without a heartbeat before a task counts as lost


@pytest.fixture
def kb(tmp_path):
    folder = tmp_path / "kb"
    rng = random.Random(23)
    for i in range(24):
        sections = "\n\n".join(f"## Part {p}\n\n" + " ".join(rng.choice(WORDS)
                                                             for _ in range(120))
                               for p in range(6))
        (folder / f"dept-{i % 3}").mkdir(parents=True, exist_ok=True)
        (folder / f"dept-{i % 3}" / f"handbook-{i:02d}.md").write_text(
            f"# Handbook {i}\n\n{sections}\n")
    return folder


def _chunks(es, alias: str) -> dict[str, tuple]:
    from elasticsearch import helpers

    es.indices.refresh(index=alias)
    fields = ["doc_id", "chunk_no", "chunk_count", "content_hash", "source_fingerprint"]
    return {hit["_id"]: tuple(hit["_source"][f] for f in fields)
            for hit in helpers.scan(es, index=alias, _source=fields)}


def _most_at_once(intervals: list[tuple[str, str]]) -> int:
    """The largest number of the [start, end) intervals that overlap at one moment."""
    edges = sorted([(datetime.fromisoformat(s), 1) for s, _ in intervals]
                   + [(datetime.fromisoformat(e), -1) for _, e in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def test_batches_spread_over_two_workers_and_survive_losing_one(
        es_url, es, index_name, cleanup_alias, kb, embedder, model_tokenizer, monkeypatch,
        tmp_path, report):
    from ragrec.dev.local_airflow import LocalAirflow
    from ragrec.sources import open_source
    from ragrec.sync import IngestOptions, Ingestor

    clean = f"{index_name}-clean"
    cleanup_alias(index_name)
    cleanup_alias(clean)
    Ingestor(es, embedder, model_tokenizer, IngestOptions(show_progress=False)).ingest(
        open_source(str(kb)), clean)
    expected = _chunks(es, clean)

    host, port = es_url.removeprefix("http://").split(":")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    monkeypatch.setenv("RAGREC_QUALITY_DOCS", str(tmp_path / "data-docs"))
    monkeypatch.delenv("ES_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http"}))
    killed: list[dict] = []

    def kill_worker_0_mid_batch(airflow: LocalAirflow) -> None:
        """Once worker-0 runs a batch - preferably after it finished one, so both workers
        hold finished batches, unless no batch is left to wait for - it is killed."""
        if killed:
            return
        batches = [t for t in airflow.task_instances("kb_ingest", run_id)
                   if t["task_id"] == "ingest_batch"]
        running = [t for t in batches
                   if t["state"] == "running" and t.get("hostname") == "worker-0"]
        done_there = any(t["state"] == "success" and t.get("hostname") == "worker-0"
                         for t in batches)
        waiting = any(t["state"] in (None, "scheduled", "queued") for t in batches)
        if running and (done_there or not waiting):
            airflow.kill_worker(0)
            killed.append(running[0])

    with ModelServerProcess("base", TOKEN, ADMIN) as server:
        monkeypatch.setenv("AIRFLOW_CONN_EAS_DEFAULT", json.dumps(
            {"conn_type": "http", "host": server.predict_url, "password": TOKEN}))
        with LocalAirflow(timeout=1200, executor="celery", workers=2, worker_slots=2,
                          heartbeat_timeout=HEARTBEAT_TIMEOUT) as airflow:
            airflow.wait_parsed("kb_ingest")
            run_id = airflow.trigger("kb_ingest", {"source": kb.as_uri(), "index": index_name,
                                                   "all_documents": True, "batch_size": 4})
            state = airflow.wait("kb_ingest", [run_id], on_poll=kill_worker_0_mid_batch)
            outcome = airflow.describe("kb_ingest", run_id, state[run_id])

    from ragrec.dev.scheduler_run import format_outcome

    batches = [t for t in outcome["tasks"] if t["task_id"] == "ingest_batch"]
    intervals = [(t["start_date"], t["end_date"]) for b in batches for t in b["tries"]]
    held, clean_held = _chunks(es, index_name), expected
    finished_on: dict[str, int] = {}
    for batch in batches:
        host = batch["tries"][-1]["hostname"]
        finished_on[host] = finished_on.get(host, 0) + 1
    report(f"\n[celery] killed worker-0 (SIGKILL, its task runners too) while it ran "
          f"ingest_batch[{killed[0]['map_index'] if killed else '?'}]\n"
          f"{format_outcome(outcome)}\n[celery] batches at once (pool model_endpoint: 2 "
          f"slots; workers: 2 x 2 slots): at most {_most_at_once(intervals)}\n"
          f"[celery] index: {len(held)} chunks of {len({c[0] for c in held.values()})} "
          f"documents; clean run: {len(clean_held)} chunks; equal: {held == clean_held}\n"
          f"[celery] batches finished per worker: {finished_on}")
    assert outcome["state"] == "success", outcome
    assert len(batches) == 6 and all(t["state"] == "success" for t in batches)

    # Spread: the first tries of the batches ran on both workers.
    first_hosts = {t["tries"][0]["hostname"] for t in batches}
    assert first_hosts == {"worker-0", "worker-1"}, outcome

    # The batch running on worker-0 when it was killed failed there (its heartbeat lost)
    # and was retried on worker-1.
    assert killed, "worker-0 never ran a batch"
    lost = next(t for t in batches if t["map_index"] == killed[0]["map_index"])
    assert [(t["hostname"], t["state"]) for t in lost["tries"]] == [
        ("worker-0", "failed"), ("worker-1", "success")], lost

    # The pool: never more than its 2 slots of batches at once, though the workers have 4.
    assert _most_at_once(intervals) == 2, intervals

    # The index: what a clean run gives, chunk for chunk.
    assert held == expected
