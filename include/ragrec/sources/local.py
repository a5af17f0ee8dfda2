"""Local folder source (``file://``), the embedded default.

File names are data: a name that is not valid UTF-8 (any byte string Linux allows) gets a
stable, reversible key (``key_for_name``), and an entry that is listed but cannot be read
as a file (a FIFO, a socket, a broken or looping symbolic link, a linked folder) is listed
with a ``problem`` so that the run quarantines it instead of skipping it in silence.
"""

from __future__ import annotations

import os
import re
import stat as stat_mode
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlparse

from ragrec.records import SourceObject
from ragrec.sources.base import SourceError, bounded_read

_ESCAPED = re.compile(rb"\\(\\|x[0-9a-f]{2})")


def key_for_name(raw: bytes) -> str:
    """The key of a relative path given as the bytes the filesystem holds.

    Valid UTF-8 is the key as it is. Otherwise each byte that does not decode becomes
    ``\\xNN`` and each backslash ``\\\\``, so the key is valid Unicode (JSON, hashing,
    Elasticsearch) and ``name_for_key`` turns it back into the same bytes.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("utf-8", "surrogateescape")
    return "".join(
        "\\\\" if ch == "\\" else
        f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else ch
        for ch in decoded
    )


def name_for_key(key: str) -> bytes:
    """The filesystem bytes of a key made by ``key_for_name`` (of an escaped key, the
    escaped form; the caller tries the literal form first)."""
    raw = key.encode("utf-8")

    def unescape(match: re.Match) -> bytes:
        token = match.group(1)
        return b"\\" if token == b"\\" else bytes([int(token[1:], 16)])

    return _ESCAPED.sub(unescape, raw)


def _describe_unreadable(path: bytes) -> tuple[str, str] | None:
    """(reason, detail) for an entry that is there but is no regular file, else None."""
    try:
        info = os.lstat(path)
    except OSError:
        return None  # vanished between listing and stat
    if stat_mode.S_ISLNK(info.st_mode):
        target = os.readlink(path).decode("utf-8", "backslashreplace")
        try:
            os.stat(path)
        except OSError as exc:
            what = "loops" if exc.errno == 40 else "is broken"  # ELOOP
            return "unreadable", f"symbolic link {what} (-> {target}): {exc.strerror}"
        if os.path.isdir(path):
            return "not_a_regular_file", (f"symbolic link to a folder (-> {target}); links "
                                          "to folders are not followed")
        return None
    kinds = {stat_mode.S_ISFIFO: "a named pipe (FIFO)", stat_mode.S_ISSOCK: "a socket",
             stat_mode.S_ISCHR: "a character device", stat_mode.S_ISBLK: "a block device"}
    for test, what in kinds.items():
        if test(info.st_mode):
            return "not_a_regular_file", f"{what}, not a regular file"
    return None


class LocalSource:
    def __init__(self, root: Path):
        self.root = root.resolve()
        if not self.root.is_dir():
            raise SourceError(f"source folder {self.root} does not exist")
        self.uri = self.root.as_uri()
        self.key_ordered = True
        self._root_bytes = os.fsencode(self.root)

    @classmethod
    def from_uri(cls, uri: str) -> LocalSource:
        if uri.startswith("file://"):
            return cls(Path(os.fsdecode(unquote_to_bytes(urlparse(uri).path))))
        return cls(Path(uri))

    def list(
        self, modified_since: datetime | None = None, modified_before: datetime | None = None,
        start_after: str | None = None,
    ) -> Iterator[SourceObject]:
        """Every file under the root in key order (a folder's entries sorted by key, a
        folder as its key plus ``/``), skipping whole folders before ``start_after``."""
        for path in self._walk(self._root_bytes, start_after):
            obj = self._object(path)
            if obj is None:
                continue  # vanished between listing and stat
            if start_after is not None and obj.key <= start_after:
                continue
            if modified_since and obj.last_modified < modified_since:
                continue
            if modified_before and obj.last_modified >= modified_before:
                continue
            yield obj

    def _walk(self, folder: bytes, start_after: str | None) -> Iterator[bytes]:
        # Bytes all the way: names are whatever the filesystem holds.
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return  # a folder removed while listing
        order = []
        for entry in entries:
            if entry.name.startswith(b"."):
                continue
            key = key_for_name(os.path.relpath(entry.path, self._root_bytes))
            # A linked folder is listed like a file (and quarantined), never followed.
            is_folder = entry.is_dir(follow_symlinks=False)
            order.append((key + "/" if is_folder else key, is_folder, entry.path))
        for key, is_folder, path in sorted(order):
            if not is_folder:
                yield path
            elif start_after is None or key > start_after or start_after.startswith(key):
                yield from self._walk(path, start_after)

    def _object(self, path: bytes) -> SourceObject | None:
        problem = None
        try:
            info = os.stat(path)
            if not stat_mode.S_ISREG(info.st_mode):
                raise OSError("not a regular file")
        except OSError:
            problem = _describe_unreadable(path)
            if problem is None:
                return None
            info = os.lstat(path)
        return SourceObject(
            uri=Path(os.fsdecode(path)).as_uri(),
            key=key_for_name(os.path.relpath(path, self._root_bytes)),
            size=info.st_size,
            fingerprint=f"{info.st_size:x}-{info.st_mtime_ns:x}",
            last_modified=datetime.fromtimestamp(info.st_mtime, UTC),
            problem=problem,
        )

    def _path(self, key: str) -> bytes:
        """The path of ``key``: its literal UTF-8 form if that exists, else the bytes it
        escapes. Never outside the root (links inside it are listed like files)."""
        for raw in dict.fromkeys((key.encode("utf-8"), name_for_key(key))):
            path = os.path.normpath(os.path.join(self._root_bytes, raw))
            if os.path.commonpath([path, self._root_bytes]) != self._root_bytes:
                raise SourceError(f"key {key!r} points outside {self.root}")
            if os.path.lexists(path):
                break
        return path

    def stat(self, key: str) -> SourceObject | None:
        return self._object(self._path(key))

    def read(self, obj: SourceObject, max_bytes: int | None = None) -> bytes:
        """The file's bytes; with ``max_bytes``, at most one byte more than that (enough
        to tell that it is too large without holding all of it)."""
        path = unquote_to_bytes(urlparse(obj.uri).path)
        with open(path, "rb") as handle:
            return bounded_read(handle, max_bytes)
