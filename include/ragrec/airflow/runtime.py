"""What a task needs, built from Connections (or the embedded defaults): the Elasticsearch
client, a source, the encoder and its tokenizer. Called inside tasks, never at parse time."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

MODEL_POOL = "model_endpoint"  # bounds concurrent calls to the model endpoint


def es_client():
    from ragrec.airflow.hooks import RagrecElasticsearchHook

    return RagrecElasticsearchHook().get_conn()


def source(uri: str):
    """``oss://`` with ``oss_default``'s endpoint and keys; ``file://`` / a path as is."""
    from ragrec.sources import open_source

    if uri.startswith("oss://"):
        from ragrec.airflow.hooks import RagrecOssHook
        from ragrec.sources.oss import OssSource

        return OssSource.from_uri(uri, RagrecOssHook().settings())
    return open_source(uri)


def default_source_uri() -> str:
    """``RAGREC_SOURCE``, else the sample documents shipped with ragrec."""
    from ragrec.config import DagSettings
    from ragrec.sources.samples import samples_dir

    return DagSettings.from_env().source or Path(samples_dir()).as_uri()


@lru_cache(maxsize=1)
def encoder():
    """(embedder, model tokenizer) for the model endpoint behind ``eas_default``, or the
    in-process model; one per task process."""
    from ragrec.airflow.hooks import RagrecModelEndpointHook
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import tokenizer_dir_for

    embedder = RagrecModelEndpointHook().embedder()
    embedder.describe()
    return embedder, ModelTokenizer(tokenizer_dir_for(embedder))


def quality_docs_dir() -> Path:
    """Where Data Docs sites are written (``RAGREC_QUALITY_DOCS``, default under the cache)."""
    from ragrec.config import DagSettings

    return DagSettings.from_env().quality_docs


@lru_cache(maxsize=1)
def models():
    """The model resolver of this task process (``models.resolver``, as the search API
    uses): the endpoint behind ``eas_default`` when it serves a version, else that version
    in process from the registry."""
    from ragrec.airflow.connections import registry_settings
    from ragrec.embedding.model_endpoint import ModelEndpoint
    from ragrec.models.resolver import ModelResolver

    default, _ = encoder()
    endpoint = default if isinstance(default, ModelEndpoint) else None
    resolver = ModelResolver(endpoint, registry_settings())
    if endpoint is None:
        resolver.adopt(default)
    return resolver


def encoder_for_model(model_uri: str | None):
    """(embedder, tokenizer) for ``model_uri``: the endpoint when it serves that version,
    else the model in process; the endpoint's model when ``model_uri`` is empty."""
    if not model_uri:
        return encoder()
    from ragrec.airflow.connections import registry_settings
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import tokenizer_dir_for
    from ragrec.models.uris import load_layout

    layout = load_layout(model_uri, registry_settings())
    resolver = models()
    resolver.add(layout)
    embedder = resolver.embedder(layout.version)
    if embedder is not resolver.endpoint:
        embedder.describe()
    return embedder, ModelTokenizer(tokenizer_dir_for(embedder))


def encoder_for_version(version: str):
    """An embedder of model ``version`` (the endpoint's, the bundled base model, or a
    version in the registry), or None when none can be found."""
    from ragrec.retrieval import EncoderMismatch

    try:
        return models().embedder(version)
    except EncoderMismatch:
        return None


def encoder_for_index(client, alias: str):
    """(embedder, tokenizer) an incremental write to ``alias`` must use: the endpoint's when
    it serves the model version recorded on the live index (or there is no index yet), else
    that version in process - during a rollout the endpoint may already serve the next model
    while the alias still holds the previous one, and one index never mixes models."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import tokenizer_dir_for
    from ragrec.indexing import versions
    from ragrec.sync import IngestError

    embedder, tokenizer = encoder()
    live = versions.current_version(client, alias)
    if live is None:
        return embedder, tokenizer
    version = versions.index_meta(client, live).get("model_version")
    if version == embedder.model_version:
        return embedder, tokenizer
    other = encoder_for_version(version)
    if other is None:
        raise IngestError(f"{alias} holds vectors of model {version!r}, the endpoint serves "
                          f"{embedder.model_version!r} and {version!r} cannot be loaded here "
                          "(register it, or rebuild the index with kb_reindex)")
    return other, ModelTokenizer(tokenizer_dir_for(other))
