"""Schemathesis against the model server (``serve-model``'s app on a real socket, the real
model with a cross-encoder): every route of its OpenAPI document fuzzed with the service
token, every answer held to the document (``fuzzing.py`` lists the checks). A failure
prints Schemathesis' report: the broken contract and a curl line that reproduces it."""

from __future__ import annotations

import httpx
import pytest
from fuzzing import RequestCounter, check_run, report, run_schemathesis, timed
from servers.uvicorn_thread import UvicornThread

pytestmark = pytest.mark.integration  # the model server in a thread

TOKEN, ADMIN, SERVICE = "fuzz-token", "fuzz-admin", "kb-embed"
MAX_EXAMPLES = 100  # generated requests per operation, besides the coverage cases


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.reranker import init_cross_encoder
    from ragrec.models.store import write_bundle
    from ragrec.serving.app import ServerConfig, create_app
    from ragrec.serving.loaded_model import LoadedModel

    root = tmp_path_factory.mktemp("fuzz-models")
    reranker = init_cross_encoder(base_model_dir(), root / "ce-init")
    bundle = write_bundle(root / "v1", "kb-minilm", "kb-minilm-v1", base_model_dir(), reranker)
    model = LoadedModel.from_uri(str(bundle.root))
    model.warm_up()
    # The admin route is documented with its own token; fuzzed with the service token it
    # refuses every request (401), so no fuzzer-chosen model URI is ever loaded.
    counter = RequestCounter(create_app(model, ServerConfig(service=SERVICE, token=TOKEN,
                                                            admin_token=ADMIN)))
    with UvicornThread(counter) as server:
        yield server, counter


def test_the_model_server_keeps_its_openapi_contract(served, tmp_path, request):
    server, counter = served
    result, seconds = timed(lambda: run_schemathesis(server.base, TOKEN, MAX_EXAMPLES,
                                                     tmp_path))
    report(request.config, "model server", counter, seconds)
    check_run(result)
    # The fuzzing counts only if it got past the token: embeddings and rerankings were
    # computed, and bad bodies met the hand-written checks (400), not only the guard (401).
    assert counter.statuses[200] > 50 and counter.statuses[400] > 50, counter.statuses
    assert counter.paths[f"/api/predict/{SERVICE}"] > MAX_EXAMPLES


def test_without_the_token_every_model_route_is_a_401(served):
    server, _ = served
    for path in (f"/api/predict/{SERVICE}", "/v1/embeddings", "/v1/rerank", "/admin/model"):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.post(f"{server.base}{path}", json={}, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
