"""Where documents come from: ``file://`` (the embedded default) and ``oss://bucket/prefix``."""

from __future__ import annotations

from ragrec.sources.base import Source, SourceError, SourceUnavailable
from ragrec.sources.local import LocalSource


def open_source(uri: str) -> Source:
    """A Source for ``uri``: ``file:///abs/dir``, a plain local path, or ``oss://bucket/prefix``."""
    if uri.startswith("oss://"):
        from ragrec.sources.oss import OssSource

        return OssSource.from_uri(uri)
    if uri.startswith("file://") or "://" not in uri:
        return LocalSource.from_uri(uri)
    raise SourceError(f"unsupported source {uri!r}: use file:// or oss://")


__all__ = ["LocalSource", "Source", "SourceError", "SourceUnavailable", "open_source"]
