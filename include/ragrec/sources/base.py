"""The one interface every source implements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Protocol

from ragrec.records import SourceObject


class SourceError(RuntimeError):
    pass


class SourceUnavailable(SourceError):
    """The source itself did not answer (network failure, throttling or a server error that
    outlasted the retries), as opposed to one object that cannot be read."""


class Source(Protocol):
    uri: str
    key_ordered: bool  # list() yields keys in ascending order (checked as it streams)

    def list(
        self, modified_since: datetime | None = None, modified_before: datetime | None = None,
        start_after: str | None = None,
    ) -> Iterator[SourceObject]:
        """Objects under the root, page by page; optionally one time window, and only keys
        after ``start_after`` (a source that cannot skip ahead may list them: callers
        filter)."""
        ...

    def read(self, obj: SourceObject, max_bytes: int | None = None) -> bytes:
        """The object's bytes; with ``max_bytes``, at most ``max_bytes + 1`` of them."""
        ...

    def stat(self, key: str) -> SourceObject | None:
        """The object at ``key`` (relative to the root) as a listing would show it, or None
        when it no longer exists."""
        ...


def bounded_read(stream: BinaryIO, max_bytes: int | None, block: int = 1 << 20) -> bytes:
    """All of ``stream``, or its first ``max_bytes + 1`` bytes: a file that grew past the
    limit after it was listed is still caught as too large without reading all of it."""
    if max_bytes is None:
        return stream.read()
    parts: list[bytes] = []
    left = max_bytes + 1
    while left > 0:
        part = stream.read(min(block, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
