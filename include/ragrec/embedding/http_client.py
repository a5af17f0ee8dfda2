"""Client for a remote embedding endpoint.

Two wire protocols:

* ``eas`` - PAI-EAS style: ``POST {url}`` where url is ``.../api/predict/{service}``, header
  ``Authorization: <token>``, body ``{"texts": [...]}``, answer
  ``{"embeddings": [[...]], "model_version": "...", "dims": N}`` (ragrec's model server).
* ``openai`` - ``POST {base}/v1/embeddings`` with ``Authorization: Bearer <token>``, body
  ``{"model": ..., "input": [...]}``, answer ``{"data": [{"index": i, "embedding": [...]}]}``
  (DashScope/Bailian compatible mode, vLLM, llama.cpp, ragrec's model server).

Requests are batched by count and by tokens, sent with bounded concurrency under a
client-side rate limit, and retried with exponential backoff (honouring ``Retry-After``) on
429/5xx and connection errors. Every vector is checked for dimension and finiteness; a batch
that fails for good is reported per text in ``EmbedResult.errors``, never raised mid-run.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson

from ragrec.embedding.base import EmbeddingError, EmbedResult, check_vectors

log = logging.getLogger(__name__)
RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class RateLimiter:
    """Token bucket shared by the client's threads: at most ``rate`` requests per second."""

    def __init__(self, rate: float | None, burst: int = 1):
        self.rate = rate
        self.capacity = max(1, burst)
        self.tokens = float(self.capacity)
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        if not self.rate:
            return
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (either delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _decode(content: bytes):
    """orjson (~5x faster than json); stdlib json for bodies orjson refuses, such as the
    NaN/Infinity tokens Python servers emit, so the vector check can name the problem."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def detect_protocol(url: str) -> str:
    return "eas" if "/api/predict/" in url else "openai"


class HttpEmbedder:
    def __init__(
        self,
        url: str,
        protocol: str | None = None,
        token: str | None = None,
        model: str | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        concurrency: int = 2,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        requests_per_second: float | None = None,
        timeout: float = 60.0,
        expected_dims: int | None = None,
    ):
        self.protocol = protocol or detect_protocol(url)
        if self.protocol not in ("eas", "openai"):
            raise ValueError(f"unknown embedding protocol {self.protocol!r}")
        url = url.rstrip("/")
        if self.protocol == "openai" and not url.endswith("/embeddings"):
            url = url + ("/embeddings" if url.endswith("/v1") else "/v1/embeddings")
        self.url = url
        self.model = model
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.limiter = RateLimiter(requests_per_second, burst=self.concurrency)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token if self.protocol == "eas" else f"Bearer {token}"
        self.client = httpx.Client(headers=headers, timeout=timeout)
        self.dims: int | None = expected_dims
        self.model_version: str = model or "unknown"
        self.max_input_tokens: int = 256
        self._described = False

    # -- protocol --------------------------------------------------------------------------
    def _body(self, texts: list[str]) -> dict:
        if self.protocol == "eas":
            return {"texts": texts}
        body = {"input": texts, "encoding_format": "float"}
        if self.model:
            body["model"] = self.model
        return body

    def _parse(self, payload: dict, count: int) -> tuple[list, str | None]:
        try:
            if self.protocol == "eas":
                return payload["embeddings"], payload.get("model_version")
            rows = sorted(payload["data"], key=lambda row: row["index"])
            return [row["embedding"] for row in rows], payload.get("model")
        except (KeyError, TypeError) as exc:
            raise EmbeddingError(f"malformed embedding response: missing {exc}") from exc

    # -- one request with retries ----------------------------------------------------------
    def _request(self, texts: list[str]) -> np.ndarray:
        attempt = 0
        while True:
            self.limiter.acquire()
            try:
                response = self.client.post(self.url, content=orjson.dumps(self._body(texts)))
            except httpx.TransportError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", None
            else:
                if response.status_code == 200:
                    try:
                        payload = _decode(response.content)
                    except ValueError as exc:
                        raise EmbeddingError(f"embedding response is not JSON: {exc}") from exc
                    vectors, version = self._parse(payload, len(texts))
                    array = check_vectors(vectors, len(texts), self.dims)
                    if version and self.model_version in ("unknown", self.model):
                        self.model_version = version
                    return array
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise EmbeddingError(f"embedding endpoint refused the request: {problem}")
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            attempt += 1
            if attempt > self.max_retries:
                raise EmbeddingError(f"embedding endpoint failed {attempt} times: {problem}")
            if wait is None:
                wait = self.backoff_seconds * 2 ** (attempt - 1) * (0.5 + random.random())
            wait = min(wait, self.max_backoff_seconds)
            log.warning("embedding request failed (%s); retry %d/%d in %.1fs",
                        problem, attempt, self.max_retries, wait)
            time.sleep(wait)

    # -- public ----------------------------------------------------------------------------
    def describe(self) -> None:
        """A probe request: learns the endpoint's dimension and model version."""
        if self._described:
            return
        expected = self.dims
        self.dims = None
        vector = self._request(["ragrec endpoint probe"])
        if expected is not None and vector.shape[1] != expected:
            raise EmbeddingError(
                f"wrong embedding dimension: endpoint returns {vector.shape[1]}, "
                f"expected {expected}"
            )
        self.dims = int(vector.shape[1])
        self._described = True

    def _batches(self, texts: Sequence[str], token_counts: Sequence[int] | None):
        start, tokens = 0, 0
        for index in range(len(texts)):
            cost = token_counts[index] if token_counts is not None else len(texts[index]) // 4 + 1
            if index > start and (index - start >= self.batch_size
                                  or tokens + cost > self.max_batch_tokens):
                yield start, index
                start, tokens = index, 0
            tokens += cost
        if start < len(texts):
            yield start, len(texts)

    def embed(self, texts: Sequence[str], token_counts: Sequence[int] | None = None) -> EmbedResult:
        self.describe()
        vectors = np.zeros((len(texts), self.dims), dtype=np.float32)
        errors: dict[int, str] = {}
        batches = list(self._batches(texts, token_counts))

        def run(bounds):
            start, end = bounds
            try:
                vectors[start:end] = self._request(list(texts[start:end]))
            except EmbeddingError as exc:
                for index in range(start, end):
                    errors[index] = str(exc)

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            list(pool.map(run, batches))
        return EmbedResult(vectors, errors)

    def close(self) -> None:
        self.client.close()
