"""ragrec on a 3-node Elasticsearch cluster (``ragrec es start --nodes 3``), the client given
every node: indices carry a replica; a node stopped in the middle of an ingest costs retries,
not documents; a node that crashes while ``kb_reindex`` rebuilds never leaves the alias on a
red index, and a red candidate is never swapped in."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading

import pytest
from dags.conftest import load_dag

from distributed.conftest import AliasWatch, member_holding, wait_until

pytestmark = pytest.mark.distributed

WORDS = ("policy travel hotel flight vpn gateway leave payroll laptop badge office printer "
         "security password training benefit claim receipt manager approval deadline").split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """1,100 short Markdown documents: more than two 512-chunk writing windows."""
    folder = tmp_path_factory.mktemp("cluster-kb")
    rng = random.Random(16)
    for i in range(1100):
        text = " ".join(rng.choice(WORDS) for _ in range(40))
        (folder / f"team-{i % 7}" / f"note-{i:04d}.md").parent.mkdir(exist_ok=True)
        (folder / f"team-{i % 7}" / f"note-{i:04d}.md").write_text(f"# Note {i}\n\n{text}.\n")
    return folder


def _ingestor(client, embedder, model_tokenizer, **options):
    from ragrec.sync import IngestOptions, Ingestor

    return Ingestor(client, embedder, model_tokenizer,
                    IngestOptions(show_progress=False, **options))


def _chunks(client, alias: str) -> dict[str, tuple]:
    """Every chunk behind ``alias``: id -> (document, number, count, text hash, fingerprint)."""
    from elasticsearch import helpers

    client.indices.refresh(index=alias)
    fields = ["doc_id", "chunk_no", "chunk_count", "content_hash", "source_fingerprint"]
    return {hit["_id"]: tuple(hit["_source"][f] for f in fields)
            for hit in helpers.scan(client, index=alias, _source=fields)}


def test_every_index_gets_a_replica_on_another_node(cluster, cluster_es, cluster_alias,
                                                    corpus, embedder, model_tokenizer,
                                                    tmp_path):
    """``ragrec es status`` reports the three nodes; the client knows them all; the chunk
    and quarantine indices are created with ``auto_expand_replicas 0-1``, so on three nodes
    each shard has a copy on a second node and the cluster is green."""
    from ragrec.indexing import versions
    from ragrec.indexing.quarantine_store import quarantine_index
    from ragrec.sources import open_source

    assert len(cluster_es.transport.node_pool.all()) == 3
    status = subprocess.run(
        [sys.executable, "-m", "ragrec.cli", "es", "status"], capture_output=True, text=True,
        env={**os.environ, "RAGREC_ES_NODE": cluster.settings.name, "ES_URL": ""})
    assert status.returncode == 0, status.stderr
    reported = json.loads(status.stdout)
    assert (reported["nodes"], reported["alive"], reported["urls"]) == (3, 3, cluster.urls)
    source = tmp_path / "three"
    source.mkdir()
    for name in ("a.md", "b.md", "c.md"):
        (source / name).write_text((corpus / "team-0" / "note-0000.md").read_text())
    alias = cluster_alias("replicas")
    summary = _ingestor(cluster_es, embedder, model_tokenizer).ingest(open_source(str(source)),
                                                                      alias)
    assert summary.docs_new == 3
    live = versions.current_version(cluster_es, alias)
    for index in (live, quarantine_index(alias)):
        settings = cluster_es.indices.get_settings(index=index)[index]["settings"]["index"]
        assert settings["auto_expand_replicas"] == "0-1"
        assert settings["number_of_replicas"] == "1"
        health = cluster_es.cluster.health(index=index, wait_for_status="green", timeout="60s")
        assert health["status"] == "green"
        copies = cluster_es.cat.shards(index=index, format="json")
        assert sorted(c["prirep"] for c in copies) == ["p", "r"]
        assert len({c["node"] for c in copies}) == 2


def test_a_node_stopped_mid_ingest_loses_nothing_and_a_rerun_converges(
        cluster, cluster_es, cluster_alias, corpus, embedder, model_tokenizer, report):
    """The member holding the index's primary is stopped once the first window is written.
    The run completes (the client goes on through the other nodes, the replica is promoted,
    refused bulk items are sent again) or fails with a clear "run again" error; a re-run with
    the node still down finishes; the index then holds exactly what a clean run on a healthy
    cluster holds, and nothing is quarantined."""
    from ragrec.sources import open_source
    from ragrec.sync import IngestError

    source = open_source(str(corpus))
    clean = cluster_alias("clean")
    _ingestor(cluster_es, embedder, model_tokenizer, window_chunks=32).ingest(source, clean)
    expected = _chunks(cluster_es, clean)
    assert len({c[0] for c in expected.values()}) == 1100

    faulted = cluster_alias("fault")
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = _ingestor(cluster_es, embedder, model_tokenizer,
                                           window_chunks=32).ingest(source, faulted)
        except IngestError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    wait_until(lambda: cluster_es.indices.exists(index=faulted)
               and cluster_es.count(index=faulted)["count"] > 0, what="a first window written")
    victim = member_holding(cluster_es, cluster, faulted)
    assert cluster.stop_member(victim)
    worker.join(timeout=900)
    assert not worker.is_alive()
    if "error" in outcome:  # failed clearly: says what to do
        assert "run the same command again" in str(outcome["error"])
    else:
        assert outcome["summary"].docs_quarantined == 0

    rerun = _ingestor(cluster_es, embedder, model_tokenizer).ingest(source, faulted)
    held = _chunks(cluster_es, faulted)
    health = cluster_es.cluster.health(index=faulted, wait_for_status="yellow", timeout="60s")
    first = (f"failed: {outcome['error']}" if "error" in outcome else
             f"completed: {outcome['summary'].docs_new} new, "
             f"{outcome['summary'].chunks_indexed} chunks, "
             f"{outcome['summary'].docs_quarantined} quarantined")
    report(f"\n[cluster] node {victim} (the index's primary) stopped mid-ingest; the run "
          f"{first}\n[cluster] re-run with the node still down: {rerun.docs_new} new, "
          f"{rerun.docs_changed} changed, {rerun.docs_unchanged} unchanged, "
          f"{rerun.docs_quarantined} quarantined\n[cluster] index: {len(held)} chunks of "
          f"{len({c[0] for c in held.values()})} documents, {health['status']} on "
          f"{health['number_of_nodes']} nodes; clean run {len(expected)} chunks; equal: "
          f"{held == expected}")
    assert rerun.docs_quarantined == 0 and rerun.docs_seen == 1100
    assert held == expected
    assert health["status"] in ("yellow", "green") and health["number_of_nodes"] == 2

    cluster.start_member(victim)
    assert cluster_es.cluster.health(wait_for_status="green", timeout="120s")["status"] == \
        "green"


def test_a_node_crash_during_kb_reindex_never_leaves_the_alias_on_a_red_index(
        airflow_db, cluster, cluster_es, cluster_alias, corpus, embedder, model_tokenizer,
        monkeypatch, tmp_path, report):
    """kb_reindex (``dag.test()``) rebuilds the live index on the cluster; once the candidate
    holds its first window, the member with the candidate's primary is killed (SIGKILL). The
    alias, watched throughout, only ever points at a green or yellow index; the run goes live
    with every document."""
    from ragrec.airflow import runtime
    from ragrec.indexing import versions
    from ragrec.sources import open_source

    alias = cluster_alias("reindex")
    _ingestor(cluster_es, embedder, model_tokenizer).ingest(open_source(str(corpus)), alias)
    live = versions.current_version(cluster_es, alias)
    expected = {c[:3] for c in _chunks(cluster_es, alias).values()}

    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps(
        {"conn_type": "elasticsearch", "extra": {"hosts": cluster.urls,
                                                  "request_timeout": 60}}))
    monkeypatch.delenv("AIRFLOW_CONN_EAS_DEFAULT", raising=False)
    monkeypatch.delenv("ES_URL", raising=False)
    monkeypatch.setenv("RAGREC_QUALITY_DOCS", str(tmp_path / "data-docs"))
    runtime.encoder.cache_clear()

    killed: list[int] = []

    def crash_a_node() -> None:
        def candidate_written():
            newer = [v for v in versions.list_versions(cluster_es, alias) if v > live]
            return newer and cluster_es.count(index=newer[0])["count"] > 0 and newer[0]

        candidate = wait_until(candidate_written, timeout=600, what="a candidate written")
        victim = member_holding(cluster_es, cluster, candidate)
        cluster.stop_member(victim, kill=True)
        killed.append(victim)

    watch = AliasWatch(cluster_es, alias)
    watch.start()
    crasher = threading.Thread(target=crash_a_node, daemon=True)
    crasher.start()
    dag = load_dag("kb_reindex")
    run = dag.test(run_conf={"source": corpus.as_uri(), "index": alias})
    crasher.join(timeout=60)
    watch.stop()
    runtime.encoder.cache_clear()

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    report(f"\n[cluster] kb_reindex: node {killed} (the candidate's primary) killed mid-build;"
          f" run {run.state} ({states}); the alias pointed at (index, health): {watch.seen}")
    assert killed, "the crash never happened"
    assert run.state == "success", states
    assert watch.red == [], watch.seen
    new_live = versions.current_version(cluster_es, alias)
    assert new_live != live
    assert list(dict.fromkeys(index for index, _ in watch.seen)) == [live, new_live]
    assert {c[:3] for c in _chunks(cluster_es, alias).values()} == expected


def test_a_red_candidate_is_never_swapped_in(cluster, cluster_es, cluster_alias, corpus,
                                             embedder, model_tokenizer, report):
    """A candidate without replicas whose only copy sits on a node that then stops is red:
    kb_reindex's swap refuses it (after waiting for a primary), the alias stays on the live
    version; once the node is back the same swap goes through."""
    from ragrec.indexing import versions
    from ragrec.indexing.mapping import chunk_index_body
    from ragrec.jobs.reindex import swap
    from ragrec.sources import open_source

    alias = cluster_alias("red")
    source = corpus / "team-3"
    _ingestor(cluster_es, embedder, model_tokenizer).ingest(open_source(str(source)), alias)
    live = versions.current_version(cluster_es, alias)

    body = chunk_index_body(embedder.dims, embedder.model_version)
    body["settings"] = {"number_of_shards": 1, "number_of_replicas": 0}
    candidate = versions.create_version(cluster_es, alias, body)
    cluster_es.cluster.health(index=candidate, wait_for_status="green", timeout="60s")
    victim = member_holding(cluster_es, cluster, candidate)
    assert cluster.stop_member(victim)
    wait_until(lambda: cluster_es.cluster.health(index=candidate)["status"] == "red",
               timeout=60, what="the candidate red")

    with pytest.raises(versions.IndexVersionError, match="red") as refused:
        swap(cluster_es, alias, candidate, keep=2)
    assert versions.current_version(cluster_es, alias) == live
    report(f"\n[cluster] red candidate (node {victim} stopped): swap refused: {refused.value}"
          f"; the alias stayed on {live}")

    cluster.start_member(victim)
    assert swap(cluster_es, alias, candidate, keep=2)["live"] == candidate
    assert versions.current_version(cluster_es, alias) == candidate
