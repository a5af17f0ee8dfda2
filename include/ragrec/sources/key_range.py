"""One key range ``(after, last]`` of a source, as a source: what one batch of a mapped
ingest task sees (``indexing.sync_plan.key_ranges``). The listing starts after ``after``
and, on a source that lists in key order, stops at the first key past ``last``; any other
source is listed to its end and filtered. Reads go through to the underlying source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ragrec.records import SourceObject
from ragrec.sources.base import Source


class KeyRangeSource:
    def __init__(self, source: Source, after: str | None, last: str):
        self.source = source
        self.after = after
        self.last = last
        self.uri = source.uri
        self.key_ordered = getattr(source, "key_ordered", False)

    @property
    def key_range(self) -> tuple[str | None, str]:
        return self.after, self.last

    def list(self, modified_since: datetime | None = None,
             modified_before: datetime | None = None,
             start_after: str | None = None) -> Iterator[SourceObject]:
        after = max(filter(None, (self.after, start_after)), default=None)
        for obj in self.source.list(modified_since, modified_before, start_after=after):
            if obj.key > self.last:
                if self.key_ordered:
                    return
                continue
            if after is None or obj.key > after:
                yield obj

    def read(self, obj: SourceObject, max_bytes: int | None = None) -> bytes:
        return self.source.read(obj, max_bytes)

    def stat(self, key: str) -> SourceObject | None:
        return self.source.stat(key)
