"""The model server (``ragrec serve-model``) as a client sees it: API contract of every route,
bad inputs answered with 4xx and a message, auth, metrics, the embedding client working
through it, and a model swap under load with no failed request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from servers.model_server_process import ModelServerProcess

from ragrec.embedding.bases import BASE_MODEL_VERSION
from ragrec.embedding.in_process import base_model_dir
from ragrec.embedding.model_endpoint import ModelEndpoint

pytestmark = pytest.mark.integration  # a model server process

TOKEN, ADMIN = "serve-token-123", "admin-token-456"
SERVICE = "kb-embed"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Two model versions in ragrec's layout: v1 (base encoder + a cross-encoder) and v2."""
    from ragrec.models.reranker import init_cross_encoder
    from ragrec.models.store import write_bundle

    root = tmp_path_factory.mktemp("models")
    reranker = init_cross_encoder(base_model_dir(), root / "ce-init")
    v1 = write_bundle(root / "v1", "kb-minilm", "kb-minilm-v1", base_model_dir(), reranker,
                      base_model="all-minilm-l6-v2")
    v2 = write_bundle(root / "v2", "kb-minilm", "kb-minilm-v2", base_model_dir(), None)
    return {"v1": v1.root, "v2": v2.root}


@pytest.fixture(scope="module")
def server(bundles):
    with ModelServerProcess(str(bundles["v1"]), TOKEN, ADMIN, SERVICE) as process:
        yield process.base


def _post(url: str, body=None, token: str | None = TOKEN, raw: bytes | None = None, **kw):
    headers = {"Authorization": token} if token else {}
    if raw is not None:
        return httpx.post(url, content=raw, headers=headers, timeout=60, **kw)
    return httpx.post(url, json=body, headers=headers, timeout=60, **kw)


def test_health_reports_the_served_version(server):
    health = httpx.get(f"{server}/health").json()
    assert health["version"] == "kb-minilm-v1" and health["name"] == "kb-minilm"
    assert health["dims"] == 384 and health["max_input_tokens"] == 256
    assert health["reranker"] is True and health["backend"] == "onnx"  # the torch-free default
    assert health["query_encoder"] is False  # queries and documents: one encoder
    assert health["document_version"] == "kb-minilm-v1"  # its documents: its own encoder


def test_eas_route_matches_in_process_vectors(server, embedder):
    texts = ["Aspirin lowers the risk of heart attack.", "Elasticsearch builds HNSW graphs."]
    response = _post(f"{server}/api/predict/{SERVICE}", {"texts": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "kb-minilm-v1" and body["dims"] == 384
    assert response.headers["X-Model-Version"] == "kb-minilm-v1"
    local = embedder.embed(texts).vectors
    assert np.allclose(np.asarray(body["embeddings"]), local, atol=1e-5)


def test_openai_route_and_base64(server):
    url = f"{server}/v1/embeddings"
    single = _post(url, {"input": "one text"}, token=f"Bearer {TOKEN}").json()
    assert single["object"] == "list" and len(single["data"]) == 1
    assert single["usage"]["prompt_tokens"] > 2 and single["model"] == "kb-minilm-v1"
    packed = _post(url, {"input": ["one text"], "encoding_format": "base64"}).json()
    vector = np.frombuffer(__import__("base64").b64decode(packed["data"][0]["embedding"]),
                           dtype="<f4")
    assert np.allclose(vector, single["data"][0]["embedding"], atol=1e-6)
    wrong = _post(url, {"input": ["x"], "model": "text-embedding-v3"})
    assert wrong.status_code == 404 and "kb-minilm" in wrong.json()["error"]["message"]


def test_embedding_client_works_through_both_protocols(server):
    texts = [f"document number {i} about topic {i % 7}" for i in range(70)]
    eas = ModelEndpoint(f"{server}/api/predict/{SERVICE}", token=TOKEN, batch_size=16)
    openai = ModelEndpoint(f"{server}/v1", token=TOKEN, batch_size=32)
    a, b = eas.embed(texts), openai.embed(texts)
    assert not a.errors and not b.errors
    assert eas.model_version == "kb-minilm-v1" and eas.dims == 384
    assert np.allclose(a.vectors, b.vectors, atol=1e-5)


def test_rerank_orders_documents_and_honours_top_n(server):
    documents = ["alpha", "beta gamma", "delta", {"text": "epsilon zeta"}]
    body = _post(f"{server}/v1/rerank", {"query": "gamma", "documents": documents,
                                          "top_n": 3, "return_documents": True}).json()
    results = body["results"]
    assert len(results) == 3 and body["model"] == "kb-minilm-v1"
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    texts = ["alpha", "beta gamma", "delta", "epsilon zeta"]
    assert all(r["document"]["text"] == texts[r["index"]] for r in results)


@pytest.mark.parametrize("body, raw, status, phrase", [
    ({}, None, 400, "missing field 'texts'"),
    ({"texts": []}, None, 400, "is empty"),
    ({"texts": "just a string"}, None, 400, "must be a list"),
    ({"texts": ["ok", 7]}, None, 400, "texts[1] must be a string"),
    ({"texts": ["ok", "   "]}, None, 400, "texts[1] is empty"),
    ({"texts": ["word " * 400]}, None, 400, "never truncates"),
    ({"texts": ["t"] * 257}, None, 413, "limit is 256"),
    (None, b"{not json", 400, "not valid JSON"),
    (None, b"[1, 2]", 400, "must be a JSON object"),
    (None, b"", 400, "empty request body"),
])
def test_bad_eas_input_is_a_4xx_with_a_reason(server, body, raw, status, phrase):
    response = _post(f"{server}/api/predict/{SERVICE}", body, raw=raw)
    assert response.status_code == status, response.text
    assert phrase in response.json()["error"]["message"]


@pytest.mark.parametrize("body, status, phrase", [
    ({"documents": ["a"]}, 400, "missing field 'query'"),
    ({"query": "q", "documents": []}, 400, "non-empty list"),
    ({"query": "q", "documents": [{"title": "no text"}]}, 400, "documents[0] must be a string"),
    ({"query": "q", "documents": ["a"], "top_n": 0}, 400, "positive integer"),
    ({"query": "q", "documents": ["a"] * 1001}, 413, "limit is 1000"),
])
def test_bad_rerank_input_is_a_4xx(server, body, status, phrase):
    response = _post(f"{server}/v1/rerank", body)
    assert response.status_code == status, response.text
    assert phrase in response.json()["error"]["message"]


def test_auth_and_unknown_service(server):
    assert _post(f"{server}/api/predict/{SERVICE}", {"texts": ["x"]}, token=None) \
        .status_code == 401
    assert _post(f"{server}/v1/embeddings", {"input": "x"}, token="Bearer nope") \
        .status_code == 401
    assert _post(f"{server}/admin/model", {"model": "base"}).status_code == 401
    other = _post(f"{server}/api/predict/other-service", {"texts": ["x"]})
    assert other.status_code == 404 and SERVICE in other.json()["error"]["message"]
    bad_model = _post(f"{server}/admin/model", {"model": "/no/such/model"}, token=ADMIN)
    assert bad_model.status_code == 400 and "not found" in bad_model.json()["error"]["message"]
    assert httpx.get(f"{server}/health").json()["version"] == "kb-minilm-v1"


def _metric(server: str, name: str) -> float:
    for line in httpx.get(f"{server}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def test_concurrent_rerank_requests_merge_into_fewer_model_calls(server):
    """Eight clients at once, ten passages each: every answer is that request's own ranking
    (the scores of a merged call equal a request alone), in fewer cross-encoder calls."""
    from concurrent.futures import ThreadPoolExecutor

    queries = [f"question {i} about gamma" for i in range(8)]
    documents = [f"passage {j} on gamma and delta {j * j}" for j in range(10)]

    def ask(query):
        return _post(f"{server}/v1/rerank", {"query": query, "documents": documents}).json()

    alone = ask("a query scored on its own first")
    pairs, calls = (_metric(server, "ragrec_pairs_reranked_total"),
                    _metric(server, "ragrec_rerank_batch_size_count"))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, queries))
    assert _metric(server, "ragrec_pairs_reranked_total") - pairs == 80
    assert _metric(server, "ragrec_rerank_batch_size_count") - calls < 8
    again = ask("a query scored on its own first")  # from the score cache
    assert again["results"] == alone["results"]
    for query, answer in zip(queries, answers, strict=True):
        single = ask(query)
        assert [r["index"] for r in answer["results"]] == \
            [r["index"] for r in single["results"]]
        assert np.allclose([r["relevance_score"] for r in answer["results"]],
                           [r["relevance_score"] for r in single["results"]], atol=1e-6)


def test_metrics_count_requests_and_batches(server):
    _post(f"{server}/api/predict/{SERVICE}", {"texts": ["metrics probe"]})
    text = httpx.get(f"{server}/metrics").text
    assert 'ragrec_requests_total{route="/api/predict/{service}",status="200"}' in text
    assert "ragrec_batch_size_count" in text and "ragrec_texts_embedded_total" in text
    assert 'ragrec_model_info{name="kb-minilm",version="kb-minilm-v1"} 1' in text


def test_openapi_schema_lists_the_routes(server):
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/api/predict/{service}", "/v1/embeddings", "/v1/rerank", "/health",
            "/admin/model"} <= set(paths)


def test_openapi_describes_bodies_statuses_and_media_types(server):
    """The routes read the raw request (hand-written checks), so the document declares their
    bodies itself: without them no client generator or fuzzer could use the server."""
    schema = httpx.get(f"{server}/openapi.json").json()
    paths, schemas = schema["paths"], schema["components"]["schemas"]
    bodies = {"/api/predict/{service}": "EasRequest", "/v1/embeddings": "EmbeddingsRequest",
              "/v1/rerank": "RerankRequest", "/admin/model": "ModelSwapRequest"}
    for path, name in bodies.items():
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{name}"} and name in schemas
        assert {"200", "400", "401", "413", "500"} <= set(operation["responses"])
        assert operation["responses"]["413"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}
    assert schemas["EasRequest"]["properties"]["texts"]["maxItems"] == 256
    assert paths["/v1/embeddings"]["post"]["security"] == [{"service": []}]
    assert paths["/admin/model"]["post"]["security"] == [{"admin": []}]
    assert {"403", "409"} <= set(paths["/admin/model"]["post"]["responses"])
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert "security" not in paths["/health"]["get"]


@pytest.mark.parametrize("method, path, raw, status, phrase", [
    ("get", "/no/such/route", None, 404, "no route '/no/such/route'"),
    ("get", f"/api/predict/{SERVICE}", None, 405, "GET is not allowed"),
    ("put", "/metrics", None, 405, "use GET"),
    ("post", "/v1/embeddings", b'{"input": "caf\xe9"}', 400,
     "request body is not valid UTF-8"),
    ("post", "/v1/rerank", b"[" * 5000 + b"]" * 5000, 400, "depth limit exceeded"),
])
def test_every_error_comes_in_the_envelope(server, method, path, raw, status, phrase):
    response = httpx.request(method, f"{server}{path}", content=raw, timeout=60,
                             headers={"Authorization": TOKEN})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == status
    assert phrase in response.json()["error"]["message"]
    if status == 405:
        assert response.headers["allow"] in ("POST", "GET")


def test_a_body_over_8_mb_is_a_413_and_the_service_token_comes_first(server):
    big = b'{"texts": ["' + b"a" * (8 * 1024 * 1024) + b'"]}'
    refused = _post(f"{server}/api/predict/{SERVICE}", raw=big)
    assert refused.status_code == 413 and "8388608-byte limit" in refused.json()["error"][
        "message"]
    assert _post(f"{server}/api/predict/{SERVICE}", raw=big, token=None).status_code == 401
    assert _post(f"{server}/v1/embeddings", raw=big, token=ADMIN).status_code == 401


def test_concurrent_requests_share_batches(server):
    before = _batch_count(server)
    results = []

    def call(i):
        response = _post(f"{server}/api/predict/{SERVICE}", {"texts": [f"text {i}"]})
        results.append(response.status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 24
    assert _batch_count(server) - before < 24  # some requests were merged into one call


def _batch_count(server) -> int:
    for line in httpx.get(f"{server}/metrics").text.splitlines():
        if line.startswith("ragrec_batch_size_count"):
            return int(float(line.split()[-1]))
    return 0


def _perturbed_copy(source: Path, out: Path, seed: int = 7) -> Path:
    """A copy of a sentence-transformers model with noise on its word embeddings: another
    encoder of the same shape, standing in for a trained query encoder."""
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(source, out)
    weights = load_file(str(out / "model.safetensors"))
    table = weights["embeddings.word_embeddings.weight"]
    noise = np.random.default_rng(seed).normal(0.0, 0.05, table.shape).astype(table.dtype)
    weights["embeddings.word_embeddings.weight"] = table + noise
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_a_version_with_a_query_encoder_serves_queries_with_it(tmp_path):
    """Documents through the version's embedder, queries through its query encoder: asked
    for with input_type on either route, and asked for by the client and the resolver on
    their own once the server says the version has one."""
    from ragrec.embedding.onnx_runtime import OnnxEmbedder
    from ragrec.jobs.rollout import RolloutError, smoke_test
    from ragrec.models.resolver import ModelResolver
    from ragrec.models.store import write_bundle
    from ragrec.serving.loaded_model import LoadedModel

    layout = write_bundle(tmp_path / "v3", "kb-minilm", "kb-minilm-v3", base_model_dir(),
                          query_encoder_src=_perturbed_copy(base_model_dir(), tmp_path / "q"),
                          lineage={"documents": {"base_model": "kb-minilm-v1",
                                                 "trained": False}})
    texts = ["does aspirin prevent heart attacks", "reset a forgotten vpn password"]
    documents = OnnxEmbedder(layout.embedder_dir).embed(texts).vectors
    queries = OnnxEmbedder(layout.query_dir).embed(texts).vectors
    assert not np.allclose(documents, queries, atol=1e-3)

    def same(a, b):
        return np.allclose(np.asarray(a, dtype=np.float32), b, atol=1e-5)

    with ModelServerProcess(str(layout.root), TOKEN, ADMIN, SERVICE) as process:
        eas = process.predict_url
        assert httpx.get(f"{process.base}/health").json()["query_encoder"] is True
        plain = _post(eas, {"texts": texts}).json()
        assert plain["query_encoder"] is True and same(plain["embeddings"], documents)
        # Its documents are encoded as v1's are: an index of v1's vectors serves it as is.
        assert plain["document_version"] == "kb-minilm-v1"
        assert same(_post(eas, {"texts": texts, "input_type": "query"}).json()["embeddings"],
                    queries)
        openai = _post(f"{process.base}/v1/embeddings", {"input": texts, "input_type": "query"})
        assert same([row["embedding"] for row in openai.json()["data"]], queries)
        bad = _post(eas, {"texts": texts, "input_type": "passage"})
        assert bad.status_code == 400
        assert "'input_type' must be one of" in bad.json()["error"]["message"]
        for url in (eas, f"{process.base}/v1"):
            endpoint = ModelEndpoint(url, token=TOKEN)
            vectors, version = endpoint.encode(texts)
            assert version == "kb-minilm-v3" and same(vectors, queries)
            assert same(endpoint.embed(texts).vectors, documents)
            assert endpoint.document_version == "kb-minilm-v1"
        resolver = ModelResolver(ModelEndpoint(eas, token=TOKEN))
        assert same(resolver.encode(texts, "kb-minilm-v3"), queries)
        assert same(resolver.encode(texts, "kb-minilm-v3", "document"), documents)
        # A rollout's smoke test checks both sides against the version's own encoders.
        smoke = smoke_test(ModelEndpoint(eas, token=TOKEN), "kb-minilm-v3", 384,
                           OnnxEmbedder(layout.embedder_dir), requests=2,
                           query_reference=OnnxEmbedder(layout.query_dir))
        assert smoke["cosine_vs_local"] >= 0.999 and smoke["query_cosine_vs_local"] >= 0.999
        with pytest.raises(RolloutError, match="query encoder"):
            smoke_test(ModelEndpoint(eas, token=TOKEN), "kb-minilm-v3", 384, requests=2,
                       query_reference=OnnxEmbedder(layout.embedder_dir))
    local = ModelResolver()  # no endpoint: the version's own encoders, in process
    local.add(layout)
    assert same(local.encode(texts, "kb-minilm-v3"), queries)
    assert same(local.encode(texts, "kb-minilm-v3", "document"), documents)
    mixed = LoadedModel(layout).embed_items([("query", texts[0]), ("document", texts[0]),
                                             ("query", texts[1])])
    assert same(mixed, np.stack([queries[0], documents[0], queries[1]]))


def test_model_swap_under_load_fails_no_request(server, bundles):
    """Last in the module: it changes the served version."""
    seen: dict[int, list[str]] = {}
    failures: list[str] = []
    stop = threading.Event()

    def load(worker):
        client = httpx.Client(timeout=60)
        versions = seen.setdefault(worker, [])
        while not stop.is_set():
            try:
                response = client.post(f"{server}/api/predict/{SERVICE}",
                                       json={"texts": ["a steady stream of queries"]},
                                       headers={"Authorization": TOKEN})
            except httpx.TransportError as exc:
                failures.append(repr(exc))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
            else:
                versions.append(response.json()["model_version"])

    workers = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)
    swap = _post(f"{server}/admin/model", {"model": f"file://{bundles['v2']}"},
                 token=f"Bearer {ADMIN}")
    time.sleep(1.0)
    stop.set()
    for worker in workers:
        worker.join()
    assert swap.status_code == 200, swap.text
    assert swap.json()["previous"]["version"] == "kb-minilm-v1"
    assert swap.json()["current"]["version"] == "kb-minilm-v2"
    assert failures == []
    for versions in seen.values():
        assert versions[0] == "kb-minilm-v1" and versions[-1] == "kb-minilm-v2"
        # the switch is clean: once a client got v2, it never gets v1 again
        first_v2 = versions.index("kb-minilm-v2")
        assert set(versions[first_v2:]) == {"kb-minilm-v2"}
    health = httpx.get(f"{server}/health").json()
    assert health["version"] == "kb-minilm-v2" and health["reranker"] is False
    rerank = _post(f"{server}/v1/rerank", {"query": "q", "documents": ["a"]})
    assert rerank.status_code == 404 and "no reranker" in rerank.json()["error"]["message"]
    assert BASE_MODEL_VERSION != health["version"]
