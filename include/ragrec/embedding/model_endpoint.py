"""The one client of the model endpoint: embeddings and reranking, over either protocol.

* ``eas`` - PAI-EAS: the URL is the service's address, ``.../api/predict/{service}`` after
  whatever path prefix a gateway puts before it. Embeddings are ``POST {url}`` with
  ``{"texts": [...]}`` -> ``{"embeddings", "model_version", "dims"}``; every other route is
  a path below the address, as EAS forwards it to the service (``{url}/v1/rerank``,
  ``{url}/health``, ``{url}/admin/model``); the token goes bare in ``Authorization``.
* ``openai`` - ``POST {base}/v1/embeddings`` (``{"input", "model"?}`` ->
  ``{"data": [{"index", "embedding"}], "model"}``) and ``{base}/v1/rerank``, with
  ``Authorization: Bearer <token>`` (DashScope/Bailian compatible mode, vLLM, ragrec's
  model server).

Requests are batched by count and by tokens, sent with bounded concurrency under a
client-side rate limit, and retried with exponential backoff (honouring ``Retry-After``) on
429/5xx and connection errors. Every vector is checked for dimension and finiteness; a batch
that fails for good is reported per text in ``EmbedResult.errors``, never raised mid-run.
Each answer names the model version that produced it (``encode`` and ``rerank`` return it),
so a caller can tell whether the endpoint serves the version it needs.
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
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

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


class EndpointRefused(EmbeddingError):
    """The endpoint answered a 4xx other than 429: the request itself is the problem (a text
    longer than the model reads, a version with no reranker, a wrong token)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _message(response: httpx.Response) -> str:
    """The endpoint's error message (ragrec's envelope), or the start of what it sent."""
    try:
        return str(orjson.loads(response.content)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return response.text[:300]


def detect_protocol(url: str) -> str:
    return "eas" if "/api/predict/" in url else "openai"


@dataclass(frozen=True)
class EndpointUrls:
    """Where each call goes, derived once from the configured URL."""

    protocol: str
    embeddings: str
    rerank: str
    rank: str
    health: str
    admin: str

    @classmethod
    def parse(cls, url: str, protocol: str | None = None) -> EndpointUrls:
        protocol = protocol or detect_protocol(url)
        if protocol not in ("eas", "openai"):
            raise ValueError(f"unknown endpoint protocol {protocol!r}: use eas or openai")
        parts = urlsplit(url.strip())
        path = parts.path.rstrip("/")
        if "/api/predict/" in path:
            # The service's address: the prefix, /api/predict/ and the service name.
            head, _, tail = path.partition("/api/predict/")
            path = f"{head}/api/predict/{tail.split('/')[0]}"
        else:
            for suffix in ("/v1/embeddings", "/v1/rerank", "/v1"):
                if path.endswith(suffix):
                    path = path[:-len(suffix)]
                    break
        base = urlunsplit(parts._replace(path=path, query="", fragment=""))
        return cls(
            protocol=protocol,
            embeddings=base if protocol == "eas" else f"{base}/v1/embeddings",
            rerank=f"{base}/v1/rerank",
            rank=f"{base}/rank",
            health=f"{base}/health",
            admin=f"{base}/admin/model",
        )


class ModelEndpoint:
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
        self.urls = EndpointUrls.parse(url, protocol)
        self.protocol = self.urls.protocol
        self.url = self.urls.embeddings
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
        # Whether the served version encodes queries with an encoder of its own (ragrec's
        # server says so in every answer; None until an answer came, False for others).
        self.query_encoder: bool | None = None
        # The version whose document encoder it serves (ragrec's server says so; a version
        # that trained only its query side names its base): None until an answer says.
        self.document_version: str | None = None
        self._described = False

    # -- protocol --------------------------------------------------------------------------
    def _body(self, texts: list[str], role: str = "document") -> dict:
        body = {"texts": texts} if self.protocol == "eas" else \
            {"input": texts, "encoding_format": "float"}
        if self.model and self.protocol != "eas":
            body["model"] = self.model
        if role == "query":  # only sent to a server that has a query encoder
            body["input_type"] = "query"
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
    def _post(self, url: str, body: dict, what: str):
        """The decoded answer of one POST, retried on 429/5xx and network failures."""
        attempt = 0
        while True:
            self.limiter.acquire()
            try:
                response = self.client.post(url, content=orjson.dumps(body))
            except httpx.TransportError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", None
            else:
                if response.status_code == 200:
                    try:
                        return _decode(response.content)
                    except ValueError as exc:
                        raise EmbeddingError(f"{what} response is not JSON: {exc}") from exc
                problem = f"HTTP {response.status_code}: {_message(response)}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise EndpointRefused(response.status_code,
                                          f"{what} endpoint refused the request: {problem}")
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            attempt += 1
            if attempt > self.max_retries:
                raise EmbeddingError(f"{what} endpoint failed {attempt} times: {problem}")
            if wait is None:
                wait = self.backoff_seconds * 2 ** (attempt - 1) * (0.5 + random.random())
            wait = min(wait, self.max_backoff_seconds)
            log.warning("%s request failed (%s); retry %d/%d in %.1fs",
                        what, problem, attempt, self.max_retries, wait)
            time.sleep(wait)

    def _request(self, texts: list[str], role: str = "document"
                 ) -> tuple[np.ndarray, str | None]:
        payload = self._post(self.url, self._body(texts, role), "embedding")
        vectors, version = self._parse(payload, len(texts))
        array = check_vectors(vectors, len(texts), self.dims)
        if version and self.model_version in ("unknown", self.model):
            self.model_version = version
        self.query_encoder = isinstance(payload, dict) and payload.get("query_encoder") is True
        documents = payload.get("document_version") if isinstance(payload, dict) else None
        self.document_version = documents if isinstance(documents, str) and documents else None
        return array, version

    # -- public ----------------------------------------------------------------------------
    def describe(self) -> None:
        """A probe request: learns the endpoint's dimension and model version."""
        if self._described:
            return
        expected = self.dims
        self.dims = None
        vector, _ = self._request(["ragrec endpoint probe"])
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

    def embed(self, texts: Sequence[str], token_counts: Sequence[int] | None = None,
              role: str = "document") -> EmbedResult:
        """Batches of ``texts`` (documents; ``role`` "query": through ``encode``'s rule)."""
        if role == "query":
            return EmbedResult(self.encode(list(texts), "query")[0])
        self.describe()
        vectors = np.zeros((len(texts), self.dims), dtype=np.float32)
        errors: dict[int, str] = {}
        batches = list(self._batches(texts, token_counts))

        def run(bounds):
            start, end = bounds
            try:
                vectors[start:end] = self._request(list(texts[start:end]))[0]
            except EmbeddingError as exc:
                for index in range(start, end):
                    errors[index] = str(exc)

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            list(pool.map(run, batches))
        return EmbedResult(vectors, errors)

    def encode(self, texts: list[str], role: str = "query") -> tuple[np.ndarray, str]:
        """Vectors of a few texts (queries, or documents for ``role`` "document") in one
        request, with the model version that made them; raises ``EmbeddingError``
        (``EndpointRefused`` for a 4xx). Queries go to the served version's query encoder
        when it has one: asked for with ``input_type`` once the server has said so (a
        probe first; asked again if a swap brought a version with one meanwhile)."""
        if role == "query" and self.query_encoder is None:
            self.describe()
        asked = "query" if role == "query" and self.query_encoder else "document"
        vectors, version = self._request(list(texts), asked)
        if role == "query" and asked == "document" and self.query_encoder:
            vectors, version = self._request(list(texts), "query")
        return vectors, version or self.model_version

    def rerank(self, query: str, documents: list[str]) -> tuple[np.ndarray, str]:
        """Cross-encoder scores of ``documents`` for ``query``, in their order, with the
        model version that scored them."""
        payload = self._post(self.urls.rerank, {"query": query, "documents": documents},
                             "rerank")
        try:
            scores = np.zeros(len(documents), dtype=np.float32)
            for row in payload["results"]:
                scores[int(row["index"])] = float(row["relevance_score"])
            return scores, str(payload["model"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise EmbeddingError(f"malformed rerank response: {exc!r}") from exc

    def rank(self, ranker: str, history: int, candidates: list[tuple[str, dict]]
             ) -> tuple[np.ndarray, str]:
        """Scores of recommendation candidates ``(id, features)`` by the learned ranker
        ``ranker`` (``/rank``), in their order, with the ranker version that scored them."""
        payload = self._post(self.urls.rank, {
            "ranker": ranker, "user": {"history": history},
            "candidates": [{"id": i, "features": f} for i, f in candidates]}, "rank")
        try:
            scores = np.asarray([float(s) for s in payload["scores"]], dtype=np.float64)
            if len(scores) != len(candidates):
                raise ValueError(f"{len(scores)} scores for {len(candidates)} candidates")
            return scores, str(payload["ranker"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"malformed rank response: {exc!r}") from exc

    def close(self) -> None:
        self.client.close()
