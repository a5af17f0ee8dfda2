"""The HTTP embedding client against a protocol-level endpoint on loopback."""

from __future__ import annotations

import math
import time

import pytest
from servers.embedding_endpoint import Behaviour, EmbeddingEndpoint, text_vector

from ragrec.embedding.base import EmbeddingError
from ragrec.embedding.model_endpoint import ModelEndpoint, retry_after_seconds


def client(endpoint, protocol="eas", **kwargs):
    url = endpoint.eas_url() if protocol == "eas" else endpoint.base_url + "/v1"
    kwargs.setdefault("backoff_seconds", 0.05)
    return ModelEndpoint(url, token="secret-token", **kwargs)


@pytest.mark.parametrize("protocol", ["eas", "openai"])
def test_vectors_come_back_in_order_with_the_endpoints_model_version(protocol):
    with EmbeddingEndpoint() as endpoint:
        embedder = client(endpoint, protocol)
        texts = [f"passage number {i}" for i in range(70)]
        result = embedder.embed(texts)
    assert result.errors == {}
    assert result.vectors.shape == (70, 384)
    assert result.vectors[5].tolist() == pytest.approx(text_vector(texts[5], 384), abs=1e-6)
    assert embedder.model_version == "test-model-v1"
    expected_auth = "secret-token" if protocol == "eas" else "Bearer secret-token"
    assert {r["auth"] for r in endpoint.requests} == {expected_auth}


def test_batches_by_count_and_by_tokens():
    with EmbeddingEndpoint() as endpoint:
        embedder = client(endpoint, batch_size=10, max_batch_tokens=100)
        embedder.describe()
        endpoint.requests.clear()
        embedder.embed([f"t{i}" for i in range(25)], token_counts=[5] * 25)
        by_count = sorted(len(r["texts"]) for r in endpoint.requests)
        endpoint.requests.clear()
        embedder.embed([f"t{i}" for i in range(12)], token_counts=[40] * 12)
        by_tokens = [len(r["texts"]) for r in endpoint.requests]
    assert by_count == [5, 10, 10]
    assert max(by_tokens) == 2 and sum(by_tokens) == 12


def test_429_with_retry_after_is_honoured_then_succeeds():
    behaviour = Behaviour(transient=[(429, {"Retry-After": "1"}), (503, {})])
    with EmbeddingEndpoint(behaviour) as endpoint:
        embedder = client(endpoint)
        started = time.monotonic()
        embedder.describe()
        elapsed = time.monotonic() - started
        result = embedder.embed(["a", "b"])
    assert result.errors == {}
    assert len(endpoint.requests) == 4  # 429, 503, probe ok, batch
    assert elapsed >= 1.0  # waited as told by Retry-After
    assert endpoint.requests[1]["at"] - endpoint.requests[0]["at"] >= 1.0


def test_gives_up_after_max_retries_with_a_clear_error():
    behaviour = Behaviour(transient=[(503, {})] * 10)
    with EmbeddingEndpoint(behaviour) as endpoint:
        embedder = client(endpoint, max_retries=2)
        with pytest.raises(EmbeddingError, match="failed 3 times: HTTP 503"):
            embedder.describe()
    assert len(endpoint.requests) == 3


def test_client_errors_are_not_retried():
    with EmbeddingEndpoint() as endpoint:
        embedder = ModelEndpoint(endpoint.eas_url(), token="wrong", backoff_seconds=0.01)
        with pytest.raises(EmbeddingError, match="refused the request: HTTP 401"):
            embedder.describe()
    assert len(endpoint.requests) == 1


def test_wrong_dimension_fails_only_that_batch():
    behaviour = Behaviour(wrong_dims_marker="BROKEN")
    with EmbeddingEndpoint(behaviour) as endpoint:
        embedder = client(endpoint, batch_size=2)
        texts = ["ok one", "ok two", "BROKEN three", "ok four", "ok five"]
        result = embedder.embed(texts)
    assert set(result.errors) == {2, 3}  # the batch holding the bad text
    assert "wrong embedding dimension: got 400" in result.errors[2]
    assert math.isclose(float((result.vectors[4] ** 2).sum()), 1.0, rel_tol=1e-5)


def test_non_finite_vectors_are_rejected():
    with EmbeddingEndpoint(Behaviour(nan_marker="NAN")) as endpoint:
        result = client(endpoint, batch_size=1).embed(["fine", "NAN here"])
    assert set(result.errors) == {1}
    assert "NaN" in result.errors[1]


def test_probe_refuses_an_endpoint_of_another_dimension():
    with EmbeddingEndpoint(Behaviour(dims=768)) as endpoint:
        embedder = client(endpoint, expected_dims=384)
        with pytest.raises(EmbeddingError, match="returns 768, expected 384"):
            embedder.describe()


def test_concurrency_is_bounded():
    with EmbeddingEndpoint(Behaviour(delay_seconds=0.2)) as endpoint:
        embedder = client(endpoint, batch_size=1, concurrency=3)
        embedder.embed([f"t{i}" for i in range(9)])
    assert endpoint.max_in_flight == 3


def test_client_side_rate_limit():
    with EmbeddingEndpoint() as endpoint:
        embedder = client(endpoint, batch_size=1, concurrency=4, requests_per_second=10)
        embedder.describe()
        started = time.monotonic()
        embedder.embed([f"t{i}" for i in range(12)])
        elapsed = time.monotonic() - started
    assert elapsed >= 0.8  # 12 requests at 10/s with a burst of 4


def test_retry_after_parses_seconds_and_http_dates():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3.0 <= retry_after_seconds(future) <= 5.0
