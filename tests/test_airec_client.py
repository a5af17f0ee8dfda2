"""The AIRec adapter (official SDK) against the local AIRec server: request limits, keys,
signatures, deletes, the ranking model's custom ranker URL."""

from __future__ import annotations

import pytest
from servers.airec_server import AirecServer

from ragrec.cloud.airec import AirecClient, AirecError, batches
from ragrec.config import AirecSettings
from ragrec.recs.airec_documents import behaviour_document, delete_document, item_document


def _settings(server: AirecServer, secret: str = "airec-secret", **extra) -> AirecSettings:
    return AirecSettings(endpoint=server.endpoint, access_key_id="airec-ak",
                         access_key_secret=secret, region_id="cn-hangzhou",
                         instance_id=server.instance_id, protocol="http", **extra)


def _row(n: int, excerpt: str = "A policy text.") -> dict:
    return {"doc_id": f"docs/{n}.md", "item_id": f"item-{n}", "title": f"Doc {n}",
            "excerpt": excerpt, "last_modified": "2026-03-01T00:10:00+00:00",
            "model_version": "kb-minilm-v1"}


def test_pushes_are_split_within_the_service_limits_and_keep_every_item():
    with AirecServer() as server:
        client = AirecClient(_settings(server))
        rows = [_row(n, excerpt="x" * 3000) for n in range(1700)]
        assert client.push(item_document(r, "ragrec") for r in rows) == 1700
        pushes = [r for r in server.requests if r["action"] == "PushDocument"]
        assert len(pushes) >= 3
        assert all(len(p["body"]) <= 800 and p["bytes"] <= 1_000_000 for p in pushes)
        assert len(server.items) == 1700
        fields = server.items[("item-7", "article")]
        assert fields["title"] == "Doc 7" and fields["pub_time"] == "1772323800"

        client.push([delete_document("item-7")])
        assert ("item-7", "article") not in server.items


def test_behaviours_are_pushed_in_airecs_shape_and_a_malformed_one_is_refused():
    event = {"user_id": "u-1", "doc_id": "a.md", "type": "click", "surface": "search",
             "scene_id": "home", "trace_id": "0123456789abcdef", "position": 3,
             "ts": "2026-03-01T00:10:00+00:00"}
    assert behaviour_document({**event, "type": "down"}, "item-1", "ragrec") is None
    with AirecServer() as server:
        client = AirecClient(_settings(server))
        sent = []
        documents = [behaviour_document({**event, "user_id": f"u-{n}"}, "item-1", "ragrec")
                     for n in range(1000)]
        assert client.push(documents, table="behavior", sent=sent.append) == 1000
        assert sent == [800, 1000]  # progress after every request
        first = server.behaviours[0]
        assert first["bhv_type"] == "click" and first["bhv_time"] == "1772323800"
        assert first["trace_info"] == "0123456789abcdef" and first["position"] == "3"
        # Milliseconds where AIRec wants seconds: the service's own message comes back.
        late = behaviour_document(event, "item-1", "ragrec")
        late["fields"]["bhv_time"] += "000"
        with pytest.raises(AirecError, match="10-digit unix time"):
            client.push([late], table="behavior")
        assert len(server.behaviours) == 1000


def test_oversized_documents_and_fields_are_refused_before_sending():
    huge = {"cmd": "add", "fields": {"item_id": "x", "item_type": "article",
                                     "title": "t" * 20_000}}
    with pytest.raises(AirecError, match="over AIRec's 10000"):
        list(batches([huge]))
    document = item_document(_row(1, excerpt="é" * 10_000), "ragrec")
    assert len(document["fields"]["content"].encode()) <= 4000  # cut on a character boundary


def test_wrong_credentials_and_unknown_instance_are_clear_errors():
    with AirecServer() as server:
        with pytest.raises(AirecError, match="SignatureDoesNotMatch|InvalidAccessKey"):
            AirecClient(_settings(server, secret="nope")).push(
                [item_document(_row(1), "ragrec")])
        other = AirecSettings(**{**_settings(server).__dict__, "instance_id": "airec-other"})
        with pytest.raises(AirecError, match="InstanceNotExist"):
            AirecClient(other).push([item_document(_row(1), "ragrec")])
        assert server.items == {}
    with pytest.raises(AirecError, match="settings missing"):
        AirecClient(AirecSettings())


def test_the_ranking_model_points_at_the_model_endpoint():
    with AirecServer() as server:
        client = AirecClient(_settings(server, ranking_model_id="rm-1"))
        client.point_ranker_at("http://models.internal:8000/v1/rerank", "kb-minilm-v2")
        assert server.rankers["rm-1"]["meta"] == {
            "type": "custom", "custom_ranker_url": "http://models.internal:8000/v1/rerank",
            "model_version": "kb-minilm-v2"}
        with pytest.raises(AirecError, match="no ranking model id"):
            AirecClient(_settings(server)).point_ranker_at("http://x/v1/rerank", "v")
