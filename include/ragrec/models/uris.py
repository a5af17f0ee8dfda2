"""Any model URI to a local directory and its layout: a path, ``file://``, ``oss://``
(downloaded into the cache), ``base`` (the bundled base model), ``base:NAME`` (an installed
base encoder of ``embedding.bases``), or a registry reference
``registry:NAME@STAGE`` / ``registry:NAME:VERSION``.

The one module that knows both the store (layouts, fetching) and the registry (which stores
versions laid out by the store), so neither of those imports the other.
"""

from __future__ import annotations

from pathlib import Path

from ragrec.config import RegistrySettings
from ragrec.models.registry import open_registry
from ragrec.models.store import ModelLayout, fetch_model_dir, read_layout


def resolve_model_uri(uri: str | Path, registry: RegistrySettings | None = None) -> Path:
    """A local directory for ``uri``. ``registry``: the registry ``registry:`` references
    are looked up in, and the OSS access ``oss://`` URIs are fetched with (default:
    ``RegistrySettings.from_env()``; DAGs pass ``connections.registry_settings()``)."""
    settings = registry or RegistrySettings.from_env()
    text = str(uri)
    if text.startswith("registry:"):
        text = open_registry(settings).resolve(text.removeprefix("registry:"))
    return fetch_model_dir(text, settings.oss)


def load_layout(uri: str | Path, registry: RegistrySettings | None = None) -> ModelLayout:
    """The layout of the model version at ``uri`` (see ``resolve_model_uri``)."""
    return read_layout(resolve_model_uri(uri, registry))
