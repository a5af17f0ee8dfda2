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

import numpy as np

from ragrec.embedding.base import EmbeddingError
from ragrec.embedding.model_endpoint import EndpointRefused, ModelEndpoint
from ragrec.retrieval import EncoderMismatch
from ragrec.serving.http_errors import BadRequest


class ModelUnavailable(RuntimeError):
    """The endpoint cannot be reached or refused the call (the API answers 503)."""


def query_endpoint(url: str, token: str | None = None, protocol: str | None = None,
                   timeout: float = 30.0) -> ModelEndpoint:
    """The model endpoint as the API uses it: one request per query, one quick retry (a
    user is waiting; an outage is a 503, not a minute of backoff)."""
    return ModelEndpoint(url, protocol=protocol, token=token, max_retries=1,
                         backoff_seconds=0.2, timeout=timeout)


def _call(what: str, call):
    try:
        return call()
    except EndpointRefused as exc:
        if exc.status in (400, 413):
            # The endpoint refused the caller's text (e.g. longer than the model reads, which
            # it never truncates): the caller's mistake to fix, not an outage to retry.
            raise BadRequest(422, f"the model cannot take this text: {exc}") from None
        raise ModelUnavailable(f"model endpoint refused the {what}: {exc}") from exc
    except EmbeddingError as exc:
        raise ModelUnavailable(f"model endpoint unavailable for the {what}: {exc}") from exc


class QueryModels:
    def __init__(self, endpoint: ModelEndpoint | None = None,
                 registry_root: str | None = None):
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
            vectors, served = _call("query encoding", lambda: self.endpoint.encode(texts))
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
                scores, served = _call("rerank",
                                       lambda: self.endpoint.rerank(query, documents))
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
