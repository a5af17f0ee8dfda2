"""quality_monitor with dag.test() on the real node and model server: a healthy index passes
quietly; a corrupted one (a chunk with a wrong-norm vector, a document missing) fails the run
and sends one data-quality alert, by webhook and by e-mail to local sinks, naming the
failing expectations and the Data Docs site."""

from __future__ import annotations

import json
from pathlib import Path

from servers.alert_sinks import SmtpSink, WebhookSink

from dags.conftest import MODEL_TOKEN as TOKEN
from dags.conftest import load_dag as _load_dag

DOCS = {
    "travel.md": "# Travel\n\nHotel and flight costs are reimbursed within thirty days.\n",
    "vpn.md": "# VPN\n\nThe VPN client drops at airports; switch to the TCP gateway.\n",
    "leave.txt": "Parental leave lasts twenty weeks and is fully paid.\n",
    "badge.md": "# Badges\n\nBadges must be worn visibly in the server room.\n",
}


def test_a_corrupted_index_fails_the_run_and_alerts_by_webhook_and_email(
        airflow_db, es_url, es, model_server, make_ingestor, index_name, cleanup_alias,
        monkeypatch, tmp_path):
    from ragrec.airflow import runtime
    from ragrec.indexing import versions
    from ragrec.sources import LocalSource

    cleanup_alias(index_name)
    source = tmp_path / "kb"
    source.mkdir()
    for name, text in DOCS.items():
        (source / name).write_text(text)
    make_ingestor().ingest(LocalSource(source), index_name)

    host, port = es_url.removeprefix("http://").split(":")
    docs_dir = tmp_path / "data-docs"
    with WebhookSink(token="hook-secret") as hook, SmtpSink(fail_first=1) as smtp:
        for name, value in {
            "ELASTICSEARCH_DEFAULT": {"conn_type": "elasticsearch", "host": host,
                                      "port": int(port), "schema": "http"},
            "EAS_DEFAULT": {"conn_type": "http", "host": model_server.predict_url,
                            "password": TOKEN},
            "ALERTS_WEBHOOK": {"conn_type": "http", "host": hook.url, "password": "hook-secret"},
            "ALERTS_SMTP": {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                            "extra": {"to": "search-oncall@example.com",
                                      "from": "ragrec@example.com"}},
        }.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps(value))
        monkeypatch.setenv("RAGREC_QUALITY_DOCS", str(docs_dir))
        monkeypatch.delenv("ES_URL", raising=False)
        runtime.encoder.cache_clear()
        dag = _load_dag("quality_monitor")
        conf = {"source": source.as_uri(), "index": index_name, "max_age_hours": 1}

        healthy = dag.test(run_conf=conf)
        assert healthy.state == "success"
        assert hook.received == [] and smtp.messages == []

        # Corruption: a chunk whose vector is not unit length, and a document lost.
        live = versions.current_version(es, index_name)
        bad = es.get(index=live, id=next(h["_id"] for h in es.search(
            index=live, query={"term": {"doc_id": "vpn.md"}})["hits"]["hits"]))["_source"]
        bad["vector"] = [0.5] * len(bad["vector"])
        es.index(index=live, id="corrupt-chunk", document={**bad, "chunk_no": 7})
        for hit in es.search(index=live, query={"term": {"doc_id": "leave.txt"}})["hits"]["hits"]:
            es.delete(index=live, id=hit["_id"])
        es.indices.refresh(index=live)

        broken = dag.test(run_conf=conf)
        runtime.encoder.cache_clear()

    assert broken.state == "failed"
    states = {ti.task_id: ti.state for ti in broken.get_task_instances()}
    assert states["check_chunks"] == "success" and states["alert_on_failures"] == "failed"
    assert len(hook.received) == 1 and hook.rejected == 0
    text = hook.received[0]["text"]
    assert "expect_column_values_to_be_between on vector_norm: 1 unexpected" in text
    assert "expect_table_row_count_to_equal" in text
    docs_path = hook.received[0]["fields"]["data_docs"]
    assert Path(docs_path).is_file() and Path(docs_path).is_relative_to(docs_dir)
    # The SMTP server refused the first delivery (451); the retry got through.
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert smtp.envelopes[0][1] == ["search-oncall@example.com"]
    assert "data quality failed" in message["Subject"]
    assert "vector_norm" in message.get_payload()
