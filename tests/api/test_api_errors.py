"""Every error of the search API, the framework's own included, comes in the one envelope
``{"error": {"code", "message"}}``; the body limit holds for chunked bodies over a real
socket and is enforced after the token and before parsing; the OpenAPI document lists what
each route can answer."""

from __future__ import annotations

import httpx
import pytest
from servers.uvicorn_thread import UvicornThread

from api.conftest import API_TOKEN, make_client

JSON = {"Content-Type": "application/json"}


def _envelope(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    assert body["error"]["message"]
    return body["error"]["message"]


@pytest.mark.parametrize("body, words", [
    (b'{"query": "caf\xe9"}', "not valid UTF-8"),  # latin-1, not UTF-8
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"{not json", "not valid JSON"),
])
def test_unreadable_bodies_are_answered_in_the_envelope(api, body, words):
    response = api.post("/search", content=body, headers=JSON)
    status = 422 if words == "not valid JSON" else 400
    assert words in _envelope(response, status)


def test_unknown_routes_and_wrong_methods_are_answered_in_the_envelope(api):
    assert "no route '/nowhere'" in _envelope(api.get("/nowhere"), 404)
    wrong = api.delete("/search")
    assert "DELETE is not allowed" in _envelope(wrong, 405)
    assert wrong.headers["allow"] == "GET, POST"  # all of the path's, not one route's
    assert "use GET, POST" in _envelope(wrong, 405)
    assert api.put("/health").headers["allow"] == "GET"
    # without the token an unknown route is a 401: which routes exist is not given away
    _envelope(api.get("/nowhere", headers={"Authorization": ""}), 401)


def test_a_body_sent_as_another_media_type_is_a_415(api):
    response = api.post("/search", content=b"query=vpn",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "application/json" in _envelope(response, 415)


def test_every_documented_route_answers_errors_in_the_envelope(api):
    schema = api.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        url = path.replace("{doc_id}", "vpn-access.md").replace("{user_id}", "u1") \
            .replace("{name}", "missing.js")
        for method, operation in operations.items():
            if "security" in operation:  # guarded: no token is a 401 in the envelope
                _envelope(api.request(method, url, headers={"Authorization": ""}), 401)
            if "requestBody" in operation:
                _envelope(api.request(method, url, content=b"[]", headers=JSON), 422)
            unknown = {"get": "post", "post": "put"}[method]
            if unknown not in operations:
                _envelope(api.request(unknown, url), 405)
    _envelope(api.get("/static/missing.js"), 404)


def test_the_document_lists_status_codes_media_types_and_the_envelope(api):
    schema = api.get("/openapi.json").json()
    paths = schema["paths"]
    envelope = {"$ref": "#/components/schemas/ErrorBody"}
    search = paths["/search"]["post"]["responses"]
    assert {"200", "400", "401", "404", "409", "413", "415", "422", "500", "502", "503"} \
        <= set(search)
    assert search["413"]["content"]["application/json"]["schema"] == envelope
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's shape
    ask = paths["/ask"]["post"]["responses"]["200"]["content"]
    assert set(ask) == {"application/json", "text/event-stream"}
    assert ask["application/json"]["schema"] == {"$ref": "#/components/schemas/Answer"}
    assert set(paths["/"]["get"]["responses"]["200"]["content"]) == {"text/html"}
    assert paths["/recommend/item/{doc_id}"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in paths["/health"]["get"]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


# -- Over a real socket: chunked bodies, the tester's repro ------------------------------

OFFERED = 48 * 1024 * 1024  # the tester sent 42 MB chunked


def _upload(total: int, pushed: list[int]):
    piece = b'{"query": "' + b"a" * 65_000 + b'", '
    for _ in range(total // len(piece)):
        pushed[0] += len(piece)
        yield piece


@pytest.fixture
def served(es, kb_alias, api_model_server):
    from api.conftest import MODEL_TOKEN
    from ragrec.api.app import create_app
    from ragrec.config import ApiSettings
    from ragrec.models.resolver import ModelResolver, interactive_endpoint

    models = ModelResolver(interactive_endpoint(api_model_server.predict_url, MODEL_TOKEN))
    with UvicornThread(create_app(es, models, ApiSettings(kb_alias, API_TOKEN))) as server:
        yield server


@pytest.mark.parametrize("token, status", [(API_TOKEN, 413), (None, 401)])
def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(served, token, status):
    pushed = [0]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{served.base}/search", content=_upload(OFFERED, pushed),
                          headers={**headers, **JSON}, timeout=60)
    message = _envelope(response, status)
    if status == 413:
        assert "262144-byte limit" in message
    print(f"\n[body-limit] search API, {status}: the client got to push {pushed[0]:,} of "
          f"{OFFERED:,} bytes")
    assert pushed[0] < OFFERED / 4  # the server closed the connection, it did not read on
    small = httpx.post(f"{served.base}/search", timeout=60,
                       headers={"Authorization": f"Bearer {API_TOKEN}", **JSON},
                       content=(p for p in (b'{"query": ', b'"vpn", "mode": "bm25"}')))
    assert small.status_code == 200 and small.json()["hits"], small.text


def test_elasticsearch_down_is_a_503_to_retry_and_a_refused_query_a_502(
        es, kb_alias, api_model_server):
    from elasticsearch import Elasticsearch

    from ragrec.dev.es_node.node import free_port

    dead = Elasticsearch(f"http://127.0.0.1:{free_port()}", request_timeout=2, max_retries=0)
    with make_client(dead, kb_alias, api_model_server) as client:
        down = client.get("/search", params={"q": "vpn", "mode": "bm25"})
    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
    assert down.json()["error"]["message"].startswith("Elasticsearch is unreachable")
    # An index whose text field cannot take a word: Elasticsearch refuses the query.
    odd = f"{kb_alias}-odd"
    es.indices.delete(index=odd, ignore_unavailable=True)
    es.indices.create(index=odd, mappings={"properties": {
        "text": {"type": "integer"}, "title": {"type": "integer"}}})
    try:
        with make_client(es, odd, api_model_server) as client:
            refused = client.get("/search", params={"q": "vpn", "mode": "bm25"})
        assert refused.status_code == 502, refused.text
        assert refused.json()["error"]["message"].startswith("Elasticsearch refused the query")
    finally:
        es.indices.delete(index=odd, ignore_unavailable=True)
