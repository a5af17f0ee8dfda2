"""Listings in key order, in bounded memory.

A sync plan is a sorted merge of the source listing with the index state, so the listing
must come in key order (Python's ``str`` order, which is the UTF-8 byte order that OSS and
Elasticsearch's ``keyword`` sort by). A source that lists in that order (``key_ordered``)
is checked as it streams; any other is sorted externally: runs of ``run_size`` objects are
sorted and spilled to temporary files, then merged. Either way memory does not grow with
the listing. A key listed twice (a server repeating a key across pages) is kept once.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import Any

from ragrec.records import SourceObject
from ragrec.sources.base import SourceError

RUN_SIZE = 20_000
_key = attrgetter("key")


class Spool:
    """An append-only sequence that keeps its first ``limit`` items in memory and the rest
    in a temporary file; iterated in the order appended, as often as needed."""

    def __init__(self, limit: int = RUN_SIZE):
        self.limit = limit
        self.items: list[Any] = []
        self._file = None
        self._spilled = 0

    def append(self, item: Any) -> None:
        if len(self.items) < self.limit and self._file is None:
            self.items.append(item)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="ragrec-spool-")
        pickle.dump(item, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._spilled += 1

    def __len__(self) -> int:
        return len(self.items) + self._spilled

    def __iter__(self) -> Iterator[Any]:
        yield from list(self.items)
        if self._file is None:
            return
        self._file.flush()
        with open(self._file.fileno(), "rb", closefd=False) as reader:
            reader.seek(0)
            for _ in range(self._spilled):
                yield pickle.load(reader)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.items, self._spilled = [], 0


def checked_order(objects: Iterable[SourceObject], uri: str) -> Iterator[SourceObject]:
    """``objects`` as they come, refusing a key out of order; a repeated key is dropped."""
    last: str | None = None
    for obj in objects:
        if last is not None and obj.key <= last:
            if obj.key == last:
                continue
            raise SourceError(f"{uri} listed {obj.key!r} after {last!r}: the source claims "
                              "key order but does not keep it")
        last = obj.key
        yield obj


def sorted_externally(objects: Iterable[SourceObject],
                      run_size: int = RUN_SIZE) -> Iterator[SourceObject]:
    runs: list[Spool] = []
    run: list[SourceObject] = []
    try:
        for obj in objects:
            run.append(obj)
            if len(run) >= run_size:
                spool = Spool(limit=0)
                for item in sorted(run, key=_key):
                    spool.append(item)
                runs.append(spool)
                run = []
        run.sort(key=_key)
        last: str | None = None
        for obj in heapq.merge(*runs, run, key=_key):
            if obj.key != last:
                last = obj.key
                yield obj
    finally:
        for spool in runs:
            spool.close()


def in_key_order(source, objects: Iterable[SourceObject],
                 run_size: int = RUN_SIZE) -> Iterator[SourceObject]:
    """``source``'s listing ``objects`` in key order (see the module's doc)."""
    if getattr(source, "key_ordered", False):
        return checked_order(objects, source.uri)
    return sorted_externally(objects, run_size)
