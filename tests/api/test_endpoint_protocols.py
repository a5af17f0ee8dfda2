"""Dense search and rerank through the API over both endpoint protocols: behind a stand-in
for the PAI-EAS gateway (only the service's address under a path prefix exists, bare token),
and on the OpenAI-compatible routes. The model server serves v1, the index's version, so
every query is encoded and reranked by the endpoint, never in process."""

from __future__ import annotations

import pytest
from servers.eas_gateway import EasGateway

from .conftest import API_TOKEN, MODEL_TOKEN

QUERY = {"query": "my VPN keeps dropping at the airport", "mode": "dense", "k": 5}


def _client(es, alias, endpoint):
    from fastapi.testclient import TestClient

    from ragrec.api.app import create_app
    from ragrec.config import ApiSettings
    from ragrec.models.resolver import ModelResolver

    class NoLocalModels(ModelResolver):
        def _local_encoder(self, version):
            raise AssertionError(f"encoded in process ({version}), not by the endpoint")

    app = create_app(es, NoLocalModels(endpoint), ApiSettings(index=alias, token=API_TOKEN))
    return TestClient(app, headers={"Authorization": f"Bearer {API_TOKEN}"})


@pytest.fixture(scope="module")
def reference(es, kb_alias, api_model_server):
    """The ranking the direct (EAS-style URL, no gateway) endpoint gives."""
    from ragrec.models.resolver import interactive_endpoint

    with _client(es, kb_alias, interactive_endpoint(api_model_server.predict_url,
                                              MODEL_TOKEN)) as api:
        dense = api.post("/search", json=QUERY).json()
        reranked = api.post("/search", json={**QUERY, "rerank": True}).json()
    return dense, reranked


def _ids(result):
    return [hit["id"] for hit in result["hits"]]


def test_the_endpoint_urls_follow_each_protocol():
    from ragrec.embedding.model_endpoint import EndpointUrls

    eas = EndpointUrls.parse("https://1.cn-sh.pai-eas.aliyuncs.com/gw/api/predict/kb/")
    assert eas.protocol == "eas"
    assert eas.embeddings == "https://1.cn-sh.pai-eas.aliyuncs.com/gw/api/predict/kb"
    assert eas.rerank == "https://1.cn-sh.pai-eas.aliyuncs.com/gw/api/predict/kb/v1/rerank"
    assert eas.health.endswith("/gw/api/predict/kb/health")
    for given in ("http://h:8/v1", "http://h:8/v1/embeddings", "http://h:8"):
        openai = EndpointUrls.parse(given)
        assert openai.protocol == "openai"
        assert (openai.embeddings, openai.rerank) == ("http://h:8/v1/embeddings",
                                                      "http://h:8/v1/rerank")


def test_dense_search_and_rerank_behind_the_eas_gateway(es, kb_alias, api_model_server,
                                                       reference):
    from ragrec.models.resolver import interactive_endpoint

    dense_ref, reranked_ref = reference
    with EasGateway(api_model_server.base, api_model_server.service, MODEL_TOKEN) as gateway:
        with _client(es, kb_alias, interactive_endpoint(gateway.url, MODEL_TOKEN)) as api:
            dense = api.post("/search", json=QUERY)
            reranked = api.post("/search", json={**QUERY, "rerank": True})
    assert dense.status_code == 200, dense.text
    assert reranked.status_code == 200, reranked.text
    assert _ids(dense.json()) == _ids(dense_ref) and len(_ids(dense_ref)) == 5
    assert _ids(reranked.json()) == _ids(reranked_ref)
    assert reranked.json()["reranked"] is True
    assert set(gateway.forwarded) == {"/", "/v1/rerank"}  # embeddings at the address itself
    assert gateway.refused == []  # nothing was sent to a route EAS does not have


def test_dense_search_and_rerank_on_the_openai_routes(es, kb_alias, api_model_server,
                                                      reference):
    from ragrec.models.resolver import interactive_endpoint

    dense_ref, reranked_ref = reference
    endpoint = interactive_endpoint(f"{api_model_server.base}/v1", MODEL_TOKEN)
    assert endpoint.protocol == "openai"
    with _client(es, kb_alias, endpoint) as api:
        dense = api.post("/search", json=QUERY).json()
        reranked = api.post("/search", json={**QUERY, "rerank": True}).json()
    assert _ids(dense) == _ids(dense_ref)
    assert _ids(reranked) == _ids(reranked_ref) and reranked["reranked"] is True


def test_a_gateway_that_refuses_the_token_is_a_503_with_its_reason(es, kb_alias,
                                                                  api_model_server):
    from ragrec.models.resolver import interactive_endpoint

    with EasGateway(api_model_server.base, api_model_server.service, MODEL_TOKEN) as gateway:
        with _client(es, kb_alias, interactive_endpoint(gateway.url, "wrong-token")) as api:
            answer = api.post("/search", json=QUERY)
    assert answer.status_code == 503
    assert "401" in answer.json()["error"]["message"]
