"""Query-time models of the search API: the encoder and the cross-encoder of exactly the model
version recorded on the index behind the alias.

The model endpoint (``RAGREC_EMBED_URL``: the project's model server or PAI-EAS) is used when
the version it reports *in that response* is the index's; otherwise - mid-rollout, or no
endpoint - the version is loaded in process (the bundled base model, or a version from the
registry). Index and query encoder never disagree: a version that cannot be found is an
error, never a silent fallback to another model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
import orjson

from ragrec.retrieval import EncoderMismatch
from ragrec.serving.http_errors import BadRequest


class ModelUnavailable(RuntimeError):
    """The endpoint cannot be reached or refused the call (the API answers 503)."""


def endpoint_base(url: str) -> str:
    """``http://h:p/api/predict/svc`` or ``http://h:p/v1/embeddings`` -> ``http://h:p``."""
    parts = urlsplit(url.rstrip("/"))
    path = parts.path
    for marker in ("/api/predict/", "/v1"):
        if marker in path:
            path = path[:path.index(marker)]
            break
    return urlunsplit(parts._replace(path=path, query="", fragment="")).rstrip("/")


def _message(response: httpx.Response) -> str:
    """The model server's error message, or the start of whatever else it sent."""
    try:
        return str(orjson.loads(response.content)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return response.text[:200]


@dataclass
class Endpoint:
    """The model server's OpenAI-style routes, one call per query; version per response."""

    url: str
    token: str | None = None
    timeout: float = 30.0

    def __post_init__(self):
        self.base = endpoint_base(self.url)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.client = httpx.Client(headers=headers, timeout=self.timeout)

    def _post(self, path: str, body: dict) -> dict:
        try:
            response = self.client.post(self.base + path, content=orjson.dumps(body))
        except httpx.TransportError as exc:
            raise ModelUnavailable(f"model endpoint {self.base} unreachable: {exc}") from exc
        if response.status_code in (400, 413):
            # The endpoint refused the caller's text (e.g. longer than the model reads, which
            # it never truncates): the caller's mistake to fix, not an outage to retry.
            raise BadRequest(422, f"the model cannot take this text: {_message(response)}")
        if response.status_code != 200:
            raise ModelUnavailable(f"model endpoint {self.base}{path} answered "
                                   f"{response.status_code}: {response.text[:200]}")
        return orjson.loads(response.content)

    def embed(self, texts: list[str]) -> tuple[np.ndarray, str]:
        payload = self._post("/v1/embeddings", {"input": texts})
        rows = sorted(payload["data"], key=lambda r: r["index"])
        return np.asarray([r["embedding"] for r in rows], dtype=np.float32), payload["model"]

    def rerank(self, query: str, documents: list[str]) -> tuple[np.ndarray, str]:
        payload = self._post("/v1/rerank", {"query": query, "documents": documents})
        scores = np.zeros(len(documents), dtype=np.float32)
        for row in payload["results"]:
            scores[row["index"]] = row["relevance_score"]
        return scores, payload["model"]


class QueryModels:
    def __init__(self, endpoint: Endpoint | None = None, registry_root: str | None = None):
        self.endpoint = endpoint
        self.registry_root = registry_root
        self._encoders: dict[str, object] = {}
        self._rerankers: dict[str, object] = {}
        self._lock = threading.Lock()

    def _layout(self, version: str):
        from ragrec.models.registry import version_uri
        from ragrec.models.store import load_layout

        uri = version_uri(version, self.registry_root)
        if uri:
            return load_layout(uri)
        raise EncoderMismatch(f"the index holds vectors of model {version!r}, which neither "
                              "the endpoint serves nor the registry holds")

    def _local_encoder(self, version: str):
        with self._lock:
            if version not in self._encoders:
                from ragrec.embedding import encoder_for

                self._encoders[version] = encoder_for(self._layout(version).embedder_dir)
            return self._encoders[version]

    def encode(self, texts: list[str], version: str) -> np.ndarray:
        """Vectors of ``texts`` in the space of model ``version``."""
        if self.endpoint is not None:
            vectors, served = self.endpoint.embed(texts)
            if served == version:
                return vectors
        encoder = self._local_encoder(version)
        result = encoder.embed(texts)
        if result.errors:
            raise ModelUnavailable(f"query encoding failed: {result.errors[0]}")
        return np.asarray(result.vectors, dtype=np.float32)

    def rerank(self, query: str, documents: list[str], version: str) -> np.ndarray | None:
        """Cross-encoder scores from model ``version``'s reranker, or None when that version
        has none."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        if self.endpoint is not None:
            try:
                scores, served = self.endpoint.rerank(query, documents)
                if served == version:
                    return scores
            except ModelUnavailable as exc:
                if "no reranker" not in str(exc):
                    raise
        with self._lock:
            if version not in self._rerankers:
                layout = self._layout(version)
                scorer = None
                if layout.reranker_dir is not None:
                    from ragrec.models.reranker import load_cross_encoder

                    scorer = load_cross_encoder(layout.reranker_dir)
                self._rerankers[version] = scorer
            scorer = self._rerankers[version]
        return None if scorer is None else scorer.score(query, documents)
