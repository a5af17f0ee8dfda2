"""rec_train with dag.test() on the real node: skipped while nobody has clicked, then the
clicked documents' collaborative neighbours land in the feature table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dags.conftest import load_dag


def test_rec_train_skips_without_events_then_learns_from_clicks(
        dag_connections, make_ingestor, es, index_name, cleanup_alias, small_kb):
    from ragrec.recs.events import log_events
    from ragrec.recs.item_table import neighbour_lists
    from ragrec.sources import LocalSource

    cleanup_alias(index_name)
    make_ingestor().ingest(LocalSource(small_kb), index_name)
    dag = load_dag("rec_train")
    idle = dag.test(run_conf={"index": index_name})
    assert idle.state == "success"
    assert {t.task_id: t.state for t in idle.get_task_instances()}["learn_neighbours"] == \
        "skipped"

    start = datetime(2026, 11, 1, tzinfo=UTC)
    log_events(es, index_name, [
        {"user_id": f"u{n}", "doc_id": doc, "type": "click",
         "ts": start + timedelta(minutes=2 * n + k)}
        for n in range(4) for k, doc in enumerate(("vpn.md", "travel.md"))])
    run = dag.test(run_conf={"index": index_name, "settings": {"neighbours": 5}})
    assert run.state == "success"
    lists = neighbour_lists(es, index_name, ["vpn.md", "leave.txt"])
    assert lists["vpn.md"][0][0] == "travel.md" and lists["leave.txt"] == []
