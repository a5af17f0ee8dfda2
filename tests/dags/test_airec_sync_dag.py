"""airec_sync with dag.test(): the feature table in Elasticsearch (the embedded default), and
AIRec through the official SDK against a local server that checks signatures, limits and
keys: first sync pushes every item, a re-run pushes nothing, a deleted document becomes a
``delete``, the custom ranker points at the model endpoint; logged events reach the behavior
table once, with the response's trace id."""

from __future__ import annotations

import numpy as np
from servers.airec_server import AirecServer

from dags.conftest import SMALL_KB as DOCS
from dags.conftest import load_dag, set_connection


def test_feature_table_and_airec_push_follow_the_index(dag_connections, make_ingestor, es,
                                                       index_name, cleanup_alias, model_server,
                                                       small_kb, monkeypatch):
    from ragrec.recs import item_table
    from ragrec.recs.events import log_events, new_trace_id, normalise_events
    from ragrec.recs.item_table import feature_table, item_id
    from ragrec.sources import LocalSource

    cleanup_alias(index_name)
    source = small_kb
    make_ingestor().ingest(LocalSource(source), index_name)
    dag = load_dag("airec_sync")

    # Embedded default: no AIRec configured, the feature table is the output.
    run = dag.test(run_conf={"index": index_name})
    assert run.state == "success"
    table = feature_table(index_name)
    rows = {h["_source"]["doc_id"]: h["_source"] for h in es.search(
        index=table, size=10, query={"match_all": {}})["hits"]["hits"]}
    assert set(rows) == set(DOCS)
    vector = np.asarray(rows["vpn.md"]["vector"])
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-3
    similar = es.search(index=table, knn={"field": "vector", "query_vector": vector.tolist(),
                                          "k": 1, "num_candidates": 10})["hits"]["hits"]
    assert similar[0]["_source"]["doc_id"] == "vpn.md"

    with AirecServer() as airec:
        set_connection(monkeypatch, "airec_default", {
            "conn_type": "http", "host": f"http://{airec.endpoint}", "login": "airec-ak",
            "password": "airec-secret",
            "extra": {"instance_id": airec.instance_id, "ranking_model_id": "rm-1",
                      "region_id": "cn-hangzhou"}})
        first = dag.test(run_conf={"index": index_name})
        assert first.state == "success"
        assert {key[0] for key in airec.items} == {item_id(d) for d in DOCS}
        assert {f["title"] for f in airec.items.values()} >= {"Travel", "VPN"}
        meta = airec.rankers["rm-1"]["meta"]
        assert meta["custom_ranker_url"] == f"{model_server.predict_url}/v1/rerank"
        assert meta["model_version"] == "all-minilm-l6-v2-base"

        pushes = len([r for r in airec.requests if r["action"] == "PushDocument"])
        again = dag.test(run_conf={"index": index_name})
        assert again.state == "success"
        assert len([r for r in airec.requests if r["action"] == "PushDocument"]) == pushes

        # A recommendation shown and clicked, a thumbs-up, a thumbs-down; a click whose
        # write may still be in flight waits for the next run.
        trace = new_trace_id()
        shown = {"user_id": "u-1", "doc_id": "vpn.md", "trace_id": trace, "scene_id": "home",
                 "surface": "recommend_user", "position": 0}
        log_events(es, index_name, normalise_events([
            {**shown, "type": "impression"}, {**shown, "type": "click"},
            {"user_id": "u-1", "doc_id": "travel.md", "type": "up", "surface": "chat"},
            {"user_id": "u-1", "doc_id": "travel.md", "type": "down", "surface": "chat"}]))
        assert item_table.pending_behaviours(es, index_name) == []
        monkeypatch.setattr(item_table, "SETTLED_SECONDS", 0)
        assert dag.test(run_conf={"index": index_name}).state == "success"
        got = [(b["bhv_type"], b["item_id"], b["trace_info"], b["scene_id"], b["page_id"])
               for b in airec.behaviours]
        assert got == [("expose", item_id("vpn.md"), trace, "home", "recommend_user"),
                       ("click", item_id("vpn.md"), trace, "home", "recommend_user"),
                       ("like", item_id("travel.md"), "", "ragrec", "chat")]
        assert {b["trace_id"] for b in airec.behaviours} == {"ragrec"}
        assert all(b["user_id"] == "u-1" and len(b["bhv_time"]) == 10 for b in airec.behaviours)
        assert airec.behaviours[0]["position"] == "0"
        assert dag.test(run_conf={"index": index_name}).state == "success"
        assert len(airec.behaviours) == 3  # sent once

        (source / "leave.txt").unlink()
        make_ingestor().ingest(LocalSource(source), index_name)
        third = dag.test(run_conf={"index": index_name})
        assert third.state == "success"
        last = [r for r in airec.requests if r["action"] == "PushDocument"][-1]["body"]
        assert last == [{"cmd": "delete", "fields": {"item_id": item_id("leave.txt"),
                                                     "item_type": "article"}}]
        assert {key[0] for key in airec.items} == {item_id("travel.md"), item_id("vpn.md")}

        # Wrong credentials: the signature check fails and the run says so.
        set_connection(monkeypatch, "airec_default", {
            "conn_type": "http", "host": f"http://{airec.endpoint}", "login": "airec-ak",
            "password": "wrong-secret", "extra": {"instance_id": airec.instance_id}})
        (source / "new.md").write_text("# New\n\nA new policy on remote work.\n")
        make_ingestor().ingest(LocalSource(source), index_name)
        for task in dag.tasks:
            task.retries = 0
        refused = dag.test(run_conf={"index": index_name})
        assert refused.state == "failed"
        assert (item_id("new.md"), "article") not in airec.items
