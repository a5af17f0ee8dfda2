"""/recommend and /events on the real node: more-like-this by vector (one entry per
document, never the document itself), a user's profile from their clicks (clicked documents
excluded, the cross-encoder as ranking stage, popularity for a user without clicks), and
clicks exported as training pairs that ``ragrec train --clicks`` reads."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from conftest import ROOT


def test_related_documents_are_other_documents_once_each(api):
    body = api.get("/recommend/item/vpn-access.md", params={"k": 4}).json()
    ids = [item["doc_id"] for item in body["items"]]
    assert len(ids) == 4 and len(set(ids)) == 4 and "vpn-access.md" not in ids
    sims = [item["similarity"] for item in body["items"]]
    assert all(-1 <= s <= 1 for s in sims)
    assert api.get("/recommend/item/no-such.md").status_code == 404
    assert api.get("/recommend/item/vpn-access.md", params={"k": 0}).status_code == 422


def test_mmr_trades_relevance_for_variety():
    import numpy as np

    from ragrec.recs.recommend import mmr

    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    pool = [{"doc_id": "a1", "similarity": 0.9, "_vector": a},
            {"doc_id": "a2", "similarity": 0.89, "_vector": a},
            {"doc_id": "b1", "similarity": 0.6, "_vector": b}]
    assert [c["doc_id"] for c in mmr(pool, 2, 1.0)] == ["a1", "a2"]
    assert [c["doc_id"] for c in mmr(pool, 2, 0.7)] == ["a1", "b1"]


def _click(user, doc, days_ago=0.0, query=None):
    ts = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    event = {"user_id": user, "doc_id": doc, "type": "click", "ts": ts}
    return {**event, "query": query} if query else event


def test_a_users_recommendations_follow_their_clicks(api):
    user = f"u-{uuid.uuid4().hex[:6]}"
    events = [_click(user, "vpn-access.md", 0.1), _click(user, "security-incidents.md", 1),
              {"user_id": user, "doc_id": "onboarding.md", "type": "impression"}]
    assert api.post("/events", json={"events": events}).json() == {"stored": 3}
    body = api.get(f"/recommend/user/{user}", params={"k": 3}).json()
    assert body["strategy"] == "interests" and body["history"] == 2
    ids = [i["doc_id"] for i in body["items"]]
    assert ids and not {"vpn-access.md", "security-incidents.md"} & set(ids)
    assert body["reranked"] is True and all("rerank" in i for i in body["items"])

    cold = api.get("/recommend/user/nobody-yet", params={"k": 3}).json()
    assert cold["strategy"] == "popular"
    assert {i["doc_id"] for i in cold["items"]} <= {"vpn-access.md", "security-incidents.md"}


def test_a_click_carries_the_trace_id_of_the_response_that_showed_it(api, es, kb_alias):
    from ragrec.recs.events import events_index

    user = f"u-{uuid.uuid4().hex[:6]}"
    shown = api.get("/recommend/item/vpn-access.md", params={"k": 3}).json()
    other = api.get(f"/recommend/user/{user}", params={"k": 3}).json()
    searched = api.get("/search", params={"q": "vpn"}).json()
    traces = {shown["trace_id"], other["trace_id"], searched["trace_id"]}
    assert len(traces) == 3  # one per response
    first = shown["items"][0]["doc_id"]
    events = [{"user_id": user, "doc_id": item["doc_id"], "type": "impression",
               "trace_id": shown["trace_id"], "scene_id": "related", "position": n,
               "surface": "recommend_item"} for n, item in enumerate(shown["items"])]
    events.append({**events[0], "type": "click"})
    assert api.post("/events", json={"events": events}).json() == {"stored": 4}
    stored = es.search(index=events_index(kb_alias), query={"term": {"user_id": user}},
                       sort=[{"position": "asc"}], size=10)["hits"]["hits"]
    clicks = [h["_source"] for h in stored if h["_source"]["type"] == "click"]
    assert clicks == [{**clicks[0], "doc_id": first, "trace_id": shown["trace_id"],
                       "scene_id": "related", "position": 0, "surface": "recommend_item"}]
    assert clicks[0]["logged_at"] >= clicks[0]["ts"][:19]
    # What an event may carry back is checked like the rest of it.
    for bad in ({"trace_id": "not a trace"}, {"scene_id": "a:b"}, {"position": -1}):
        response = api.post("/events", json={"events": [{**events[0], **bad}]})
        assert response.status_code == 422, bad


def test_recent_clicks_weigh_more_than_old_ones():
    import numpy as np

    from ragrec.recs.content import user_profile

    now = datetime.now(UTC)
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    history = [{"doc_id": "a", "ts": now.isoformat()},
               {"doc_id": "b", "ts": (now - timedelta(days=14)).isoformat()}]
    profile = user_profile(history, vectors, now, half_life_days=7)
    assert profile[0] / profile[1] == __import__("pytest").approx(4.0, rel=1e-6)


def test_bad_events_are_refused_and_nothing_is_stored(api, es, kb_alias):
    from ragrec.recs.events import events_index

    before = es.count(index=events_index(kb_alias))["count"] if es.indices.exists(
        index=events_index(kb_alias)) else 0
    bad = [
        {"events": []},
        {"events": [{"user_id": "u", "doc_id": "d", "type": "purchase"}]},
        {"events": [{"user_id": "", "doc_id": "d", "type": "click"}]},
        {"events": [{"user_id": "u", "doc_id": "d", "type": "click", "ts": "yesterday"}]},
        {"events": [{"user_id": "u", "doc_id": "d", "type": "click"}] * 501},
    ]
    for body in bad:
        response = api.post("/events", json=body)
        assert 400 <= response.status_code < 500, body
        assert response.json()["error"]["message"]
    es.indices.refresh(index=events_index(kb_alias))
    assert es.count(index=events_index(kb_alias))["count"] == before


def test_clicks_with_a_query_export_as_training_pairs(api, kb_alias, es_url, tmp_path):
    from ragrec.models.training_data import from_clicks

    user = f"u-{uuid.uuid4().hex[:6]}"
    api.post("/events", json={"events": [
        _click(user, "parental-leave.md", query="how long is parental leave"),
        _click(user, "vpn-access.md"),  # no query: not a training pair
        {"user_id": user, "doc_id": "onboarding.md", "type": "impression", "query": "x"}]})
    out = tmp_path / "clicks.jsonl"
    env = {**__import__("os").environ, "ES_URL": es_url}
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", "events", "export",
                             "--index", kb_alias, "--out", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"query": "how long is parental leave", "doc_id": "parental-leave.md",
            "label": 1} in rows
    assert all(r["query"] for r in rows)
    training = from_clicks(out, {"parental-leave.md": "Parental leave lasts ..."})
    assert [(e.query, e.positive) for e in training.examples] == [
        ("how long is parental leave", "parental-leave.md")]
