"""Local folder source (``file://``), the embedded default."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from ragrec.records import SourceObject
from ragrec.sources.base import SourceError


class LocalSource:
    def __init__(self, root: Path):
        self.root = root.resolve()
        if not self.root.is_dir():
            raise SourceError(f"source folder {self.root} does not exist")
        self.uri = self.root.as_uri()

    @classmethod
    def from_uri(cls, uri: str) -> LocalSource:
        if uri.startswith("file://"):
            return cls(Path(unquote(urlparse(uri).path)))
        return cls(Path(uri))

    def list(
        self, modified_since: datetime | None = None, modified_before: datetime | None = None
    ) -> Iterator[SourceObject]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                obj = self._object(Path(dirpath) / name)
                if obj is None:
                    continue  # vanished between listing and stat
                if modified_since and obj.last_modified < modified_since:
                    continue
                if modified_before and obj.last_modified >= modified_before:
                    continue
                yield obj

    def _object(self, path: Path) -> SourceObject | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        if not path.is_file():
            return None
        return SourceObject(
            uri=path.as_uri(),
            key=path.relative_to(self.root).as_posix(),
            size=stat.st_size,
            fingerprint=f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
            last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
        )

    def stat(self, key: str) -> SourceObject | None:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise SourceError(f"key {key!r} points outside {self.root}")
        return self._object(self.root / key)

    def read(self, obj: SourceObject) -> bytes:
        return (self.root / obj.key).read_bytes()
