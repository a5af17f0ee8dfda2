"""The one interface every source implements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from ragrec.records import SourceObject


class SourceError(RuntimeError):
    pass


class Source(Protocol):
    uri: str

    def list(
        self, modified_since: datetime | None = None, modified_before: datetime | None = None
    ) -> Iterator[SourceObject]:
        """Objects under the root, in key order, page by page; optionally one time window."""
        ...

    def read(self, obj: SourceObject) -> bytes:
        ...

    def stat(self, key: str) -> SourceObject | None:
        """The object at ``key`` (relative to the root) as a listing would show it, or None
        when it no longer exists."""
        ...
