"""Which model serves version V: the model endpoint when it serves V, else V loaded in
process (the bundled base model, a model directory named by the caller, or a version the
registry holds), else a clear error - never a silent fallback to another model, because an
index and its query encoder must agree.

One resolver serves the search API, ``ragrec search`` and the DAGs. For queries the check
is made per response (the endpoint names the version that answered, so a swap mid-flight
is noticed); for batch work once per task (``embedder``).
"""

from __future__ import annotations

import threading

import numpy as np

from ragrec.config import RegistrySettings
from ragrec.embedding.base import ROLES, EmbeddingError
from ragrec.embedding.model_endpoint import EndpointRefused, ModelEndpoint
from ragrec.retrieval import EncoderMismatch


class ModelUnavailable(RuntimeError):
    """The endpoint cannot be reached or refused the call (a service answers 503)."""


class TextRefused(ValueError):
    """The endpoint refused the caller's text (e.g. longer than the model reads): the
    caller's mistake to fix, not an outage to retry (a service answers 422)."""


def interactive_endpoint(url: str, token: str | None = None, protocol: str | None = None,
                         timeout: float = 30.0) -> ModelEndpoint:
    """The model endpoint as a waiting user needs it: one request per query, one quick
    retry (an outage is a 503, not a minute of backoff)."""
    return ModelEndpoint(url, protocol=protocol, token=token, max_retries=1,
                         backoff_seconds=0.2, timeout=timeout)


def _call(what: str, call):
    try:
        return call()
    except EndpointRefused as exc:
        if exc.status in (400, 413):
            raise TextRefused(f"the model cannot take this text: {exc}") from None
        raise ModelUnavailable(f"model endpoint refused the {what}: {exc}") from exc
    except EmbeddingError as exc:
        raise ModelUnavailable(f"model endpoint unavailable for the {what}: {exc}") from exc


class ModelResolver:
    """``endpoint``: the model endpoint, if any. ``registry``: the registry where versions
    other than the base model are found (None: the base model and ``layouts`` only).
    ``backend``: the in-process runtime. ``layouts``: model directories already known by
    version (a candidate being gated need not be registered yet)."""

    def __init__(self, endpoint: ModelEndpoint | None = None,
                 registry: RegistrySettings | None = None, backend: str | None = None,
                 locate=None):
        self.endpoint = endpoint
        self.registry = registry
        self.backend = backend
        self._locate = locate
        self._layouts: dict[str, object] = {}
        self._encoders: dict[str, object] = {}
        self._rerankers: dict[str, object] = {}
        self._lock = threading.Lock()

    def add(self, layout) -> None:
        """Makes a model directory (``models.store.ModelLayout``) known by its version."""
        self._layouts[layout.version] = layout

    def adopt(self, embedder) -> None:
        """Uses an already loaded in-process embedder for its own version."""
        self._encoders[embedder.model_version] = embedder

    def _layout(self, version: str):
        if version in self._layouts:
            return self._layouts[version]
        from ragrec.models.uris import load_layout

        if self._locate is not None:
            uri = self._locate(version)
        else:
            from ragrec.models.registry import version_uri

            uri = version_uri(version, self.registry)
        if not uri:
            raise EncoderMismatch(f"model {version!r} is neither served by the endpoint nor "
                                  "held by the registry")
        self._layouts[version] = load_layout(uri, self.registry)
        return self._layouts[version]

    def _local_encoder(self, version: str, role: str = "document"):
        """``version``'s encoder of ``role`` texts: its query encoder for queries when it has
        one, else its embedder."""
        key = version if role == "document" else f"{version}\0{role}"
        with self._lock:
            if key not in self._encoders:
                from ragrec.embedding import encoder_for

                layout = self._layout(version)
                if role == "query" and layout.query_encoder_dir is None:
                    self._encoders[key] = self._encoders.get(version) or encoder_for(
                        layout.embedder_dir, self.backend)
                else:
                    self._encoders[key] = encoder_for(
                        layout.query_dir if role == "query" else layout.embedder_dir,
                        self.backend)
            return self._encoders[key]

    def serves(self, version: str) -> bool:
        """Whether the endpoint reports serving ``version`` (asked once per resolver)."""
        if self.endpoint is None:
            return False
        if self.endpoint.model_version == "unknown":
            _call("model description", self.endpoint.describe)
        return self.endpoint.model_version == version

    def embedder(self, version: str):
        """An embedder of ``version`` for batch work: the endpoint's when it serves it."""
        return self.endpoint if self.serves(version) else self._local_encoder(version)

    def encode(self, texts: list[str], version: str, role: str = "query") -> np.ndarray:
        """Vectors of ``texts`` in the space of model ``version``: ``role`` "query" (a
        version with a query encoder encodes queries with it) or "document" (passages,
        sentences: what the index holds)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if self.endpoint is not None:
            vectors, served = _call(f"{role} encoding",
                                    lambda: self.endpoint.encode(texts, role))
            if served == version:
                return vectors
        result = self._local_encoder(version, role).embed(texts, role=role)
        if result.errors:
            raise ModelUnavailable(f"{role} encoding failed: {result.errors[0]}")
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
                if self.serves(version):  # the endpoint serves this version: it has none
                    return None
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

    def rank(self, ranker: str, history: int, candidates: list[tuple[str, dict]]) -> np.ndarray:
        """Scores of recommendation candidates ``(id, features)`` from the learned ranker
        ``ranker`` (``models.ranker``): the endpoint's ``/rank`` when there is one -
        the route AIRec's custom ranker calls - else the same ranker loaded in process
        (also when the endpoint cannot find it: a registry it does not share)."""
        if not candidates:
            return np.zeros(0)
        if self.endpoint is not None:
            try:
                return _call("rank", lambda: self.endpoint.rank(ranker, history, candidates))[0]
            except ModelUnavailable as exc:
                if not isinstance(exc.__cause__, EndpointRefused) or exc.__cause__.status != 404:
                    raise
        from ragrec.models.ranker import load_reference

        try:
            model = load_reference(ranker, self.registry)
        except LookupError as exc:
            raise ModelUnavailable(str(exc)) from None
        return model.score([features for _, features in candidates], history)
