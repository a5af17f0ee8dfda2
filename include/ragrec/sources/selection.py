"""A fixed set of keys of a source, as a source: what one batch of a mapped ingest task
sees. Keys that vanished since the listing are skipped (the deletion is reconciled by the
next full listing); everything else reads through to the underlying source."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from ragrec.records import SourceObject
from ragrec.sources.base import Source


class SelectedSource:
    def __init__(self, source: Source, keys: Sequence[str]):
        self.source = source
        self.keys = list(dict.fromkeys(keys))
        self.uri = source.uri
        self.missing: list[str] = []

    def list(self, modified_since: datetime | None = None,
             modified_before: datetime | None = None) -> Iterator[SourceObject]:
        self.missing = []
        for key in self.keys:
            obj = self.source.stat(key)
            if obj is None:
                self.missing.append(key)
                continue
            yield obj

    def read(self, obj: SourceObject, max_bytes: int | None = None) -> bytes:
        return self.source.read(obj, max_bytes)

    def stat(self, key: str) -> SourceObject | None:
        return self.source.stat(key)
