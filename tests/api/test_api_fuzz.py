"""Schemathesis against the search API (``serve-api``'s app on a real socket, over the sample
index on the real node, queries encoded by the real model server): every route of its
OpenAPI document fuzzed with the token, every answer held to the document (``fuzzing.py``
lists the checks). A failure prints Schemathesis' report: the broken contract and a curl
line that reproduces it."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fuzzing import RequestCounter, check_run, report, run_schemathesis, timed
from servers.uvicorn_thread import UvicornThread

from api.conftest import API_TOKEN, MODEL_TOKEN

MAX_EXAMPLES = 60  # generated requests per operation, besides the coverage cases


@pytest.fixture(scope="module")
def served(es, kb_alias, api_model_server):
    """The API over a second alias of the sample index, so the events the fuzzer logs land
    in an events index of their own and no other test sees them."""
    from ragrec.api.app import create_app
    from ragrec.config import ApiSettings
    from ragrec.models.resolver import ModelResolver, interactive_endpoint

    alias = f"ragrec-test-fuzz-{uuid.uuid4().hex[:8]}"
    es.indices.put_alias(index=list(es.indices.get_alias(name=kb_alias)), name=alias)
    models = ModelResolver(interactive_endpoint(api_model_server.predict_url, MODEL_TOKEN))
    counter = RequestCounter(create_app(es, models, ApiSettings(index=alias, token=API_TOKEN)))
    try:
        with UvicornThread(counter) as server:
            yield server, counter
    finally:
        es.indices.delete_alias(index="_all", name=alias)
        es.indices.delete(index=f"{alias}-events", ignore_unavailable=True)


def test_the_search_api_keeps_its_openapi_contract(served, tmp_path, request):
    server, counter = served
    result, seconds = timed(lambda: run_schemathesis(server.base, API_TOKEN, MAX_EXAMPLES,
                                                     tmp_path))
    report(request.config, "search API", counter, seconds)
    check_run(result)
    # The fuzzing counts only if it got past the token: searches ran, and bad input met
    # the request models (422), not only the guard (401).
    assert counter.statuses[200] > 50 and counter.statuses[422] > 50, counter.statuses
    assert counter.paths["/search"] > MAX_EXAMPLES


def test_without_the_token_every_guarded_route_is_a_401(served):
    server, _ = served
    for method, path in [("POST", "/search"), ("GET", "/search?q=vpn"), ("POST", "/ask"),
                         ("GET", "/recommend/item/vpn-access.md"),
                         ("GET", "/recommend/user/u1"), ("POST", "/events")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(method, f"{server.base}{path}", headers=headers,
                                     json={} if method == "POST" else None)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.get(f"{server.base}/health").status_code == 200
