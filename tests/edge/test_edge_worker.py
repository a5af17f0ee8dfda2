"""The edge Worker in the real Workers runtime (workerd, through Miniflare) in front of the
project's model server on loopback: tokens checked before the origin, cache hits and misses
(key: route, model version, normalised body), per-token rate limits with Retry-After, origin
errors never cached, a model swap changing the key, and ragrec's own embedding client
working unchanged through it."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from servers.background import InBackground
from servers.edge_worker import EdgeWorker, edge_ready
from servers.json_reply import send_json
from servers.model_server_process import ModelServerProcess

WHY_NOT = edge_ready()
pytestmark = [pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
              pytest.mark.integration]  # workerd and a model server
ORIGIN_TOKEN, ADMIN, CLIENT = "origin-secret", "origin-admin", "edge-client"
TEXTS = {"input": ["vpn drops at the airport", "hotel reimbursement"]}


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.store import write_bundle

    root = tmp_path_factory.mktemp("edge-models")
    return {v: write_bundle(root / v, "kb-minilm", f"kb-minilm-{v}", base_model_dir()).root
            for v in ("v1", "v2")}


@pytest.fixture(scope="module")
def origin(versions):
    with ModelServerProcess(str(versions["v1"]), ORIGIN_TOKEN, ADMIN) as server:
        yield server


def _embedded(origin) -> int:
    metrics = httpx.get(f"{origin.base}/metrics").text
    return int(re.search(r"^ragrec_texts_embedded_total (\d+)$", metrics, re.M).group(1))


def _post(edge, path, body, token=CLIENT, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(edge.url + path, json=body, headers=headers, timeout=60, **kw)


def test_tokens_cache_and_normalised_bodies(origin):
    with EdgeWorker(origin.base, ORIGIN_TOKEN, (CLIENT,)) as edge:
        before = _embedded(origin)
        for token in (None, "not-a-client"):
            refused = _post(edge, "/v1/embeddings", TEXTS, token=token)
            assert refused.status_code == 401 and refused.json()["error"]["message"]
        assert _embedded(origin) == before  # refused at the edge, never at the origin

        first = _post(edge, "/v1/embeddings", TEXTS)
        assert first.status_code == 200, first.text
        assert first.headers["X-Cache"] == "MISS"
        assert first.headers["X-Model-Version"] == "kb-minilm-v1"
        after_miss = _embedded(origin)
        assert after_miss == before + 2

        # Same request, keys reordered and spaced differently: one cache entry.
        raw = b'{ "input" : ["vpn drops at the airport", "hotel reimbursement"] }'
        second = httpx.post(edge.url + "/v1/embeddings", content=raw, timeout=60,
                            headers={"Authorization": f"Bearer {CLIENT}",
                                     "Content-Type": "application/json"})
        assert second.headers["X-Cache"] == "HIT"
        assert second.json()["data"] == first.json()["data"]
        assert second.headers["X-Model-Version"] == "kb-minilm-v1"
        assert _embedded(origin) == after_miss

        other = _post(edge, "/v1/embeddings", {"input": ["another text"]})
        assert other.headers["X-Cache"] == "MISS"
        assert _post(edge, "/v1/nope", TEXTS).status_code == 404
        broken = httpx.post(edge.url + "/v1/embeddings", content=b"{oops", timeout=30,
                            headers={"Authorization": f"Bearer {CLIENT}"})
        assert broken.status_code == 400


def test_rate_limit_per_token_with_retry_after(origin):
    with EdgeWorker(origin.base, ORIGIN_TOKEN, (CLIENT, "second-client"), rate=0.2,
                    burst=3) as edge:
        codes = [_post(edge, "/v1/embeddings", TEXTS).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = _post(edge, "/v1/embeddings", TEXTS)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        # The bucket is the token's: another client is not throttled by the first.
        assert _post(edge, "/v1/embeddings", TEXTS, token="second-client").status_code == 200


class _FlakyOrigin(InBackground):
    """An origin that answers 503 to the first embedding request, then works."""

    def __init__(self):
        self.calls = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as workerd expects of an origin

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                send_json(self, 200, {"version": "stub-v1"})

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                flaky.calls += 1
                if flaky.calls == 1:
                    return send_json(self, 503, {"error": {"message": "warming up"}})
                return send_json(self, 200, {"data": [{"index": 0, "embedding": [0.6, 0.8]}],
                                             "model": "stub-v1"}, {"X-Model-Version": "stub-v1"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"



def test_origin_errors_are_never_cached():
    with _FlakyOrigin() as flaky, EdgeWorker(flaky.url, "", (CLIENT,)) as edge:
        body = {"input": ["x"]}
        failed = _post(edge, "/v1/embeddings", body)
        assert failed.status_code == 503
        retried = _post(edge, "/v1/embeddings", body)
        assert retried.status_code == 200 and retried.headers["X-Cache"] == "MISS"
        cached = _post(edge, "/v1/embeddings", body)
        assert cached.headers["X-Cache"] == "HIT" and flaky.calls == 2


def test_a_model_swap_changes_the_cache_key(versions):
    with ModelServerProcess(str(versions["v1"]), ORIGIN_TOKEN, ADMIN) as origin, \
            EdgeWorker(origin.base, ORIGIN_TOKEN, (CLIENT,)) as edge:
        assert _post(edge, "/v1/embeddings", TEXTS).headers["X-Cache"] == "MISS"
        assert _post(edge, "/v1/embeddings", TEXTS).headers["X-Cache"] == "HIT"
        # The admin route passes through the edge uncached; the origin checks the admin
        # credential, so a client token cannot swap models.
        target = {"model": str(versions["v2"])}
        denied = httpx.post(edge.url + "/admin/model", json=target, timeout=120,
                            headers={"Authorization": f"Bearer {CLIENT}"})
        assert denied.status_code == 401
        swap = httpx.post(edge.url + "/admin/model", json=target, timeout=120,
                          headers={"Authorization": ADMIN})
        assert swap.status_code == 200, swap.text
        assert swap.headers["X-Cache"] == "BYPASS"
        after = _post(edge, "/v1/embeddings", TEXTS)
        assert after.headers["X-Cache"] == "MISS"
        assert after.headers["X-Model-Version"] == "kb-minilm-v2"


def test_the_embedding_client_works_through_the_edge_and_honours_429(origin, caplog):
    from ragrec.embedding.model_endpoint import ModelEndpoint

    texts = [f"passage number {i} about travel and expenses" for i in range(12)]
    direct = ModelEndpoint(origin.predict_url, token=ORIGIN_TOKEN, batch_size=4)
    expected = direct.embed(texts).vectors
    with EdgeWorker(origin.base, ORIGIN_TOKEN, (CLIENT,), rate=1, burst=1) as edge:
        service = origin.predict_url.rsplit("/", 1)[1]
        client = ModelEndpoint(f"{edge.url}/api/predict/{service}", token=CLIENT,
                              batch_size=4, concurrency=1, max_retries=8)
        # EAS protocol sends the bare token; the edge takes it as the client's token.
        result = client.embed(texts)
    assert not result.errors
    assert np.allclose(result.vectors, expected, atol=1e-5)
    assert client.model_version == "kb-minilm-v1"
    # Three batches against a bucket of one: the client met 429s and waited Retry-After.
    waits = [r.getMessage() for r in caplog.records if "HTTP 429" in r.getMessage()]
    assert waits and all("in 1.0s" in w for w in waits)
