"""The typed, immutable records that cross stage boundaries of the ingestion flow."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SourceObject:
    """One object in a source listing.

    ``key`` is the path relative to the source root and doubles as the document id;
    ``fingerprint`` (ETag, or size+mtime for local files) decides whether it changed.
    """

    uri: str
    key: str
    size: int
    fingerprint: str
    last_modified: datetime
    # (reason, detail) when the entry is listed but cannot be read as a document (a FIFO,
    # a looping link): the run quarantines it rather than skipping it in silence.
    problem: tuple[str, str] | None = None

    @property
    def doc_id(self) -> str:
        return self.key

    @property
    def extension(self) -> str:
        name = self.key.rsplit("/", 1)[-1]
        return name.rsplit(".", 1)[-1].lower() if "." in name else ""


@dataclass(frozen=True)
class Element:
    """A piece of parsed text with its place in the document."""

    text: str
    category: str
    page: int | None = None
    title_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedDocument:
    source: SourceObject
    elements: tuple[Element, ...]
    content_sha256: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    chunk_no: int
    text: str
    title_path: tuple[str, ...]
    page: int | None
    token_count: int
    model_token_count: int

    @property
    def embedding_text(self) -> str:
        """What the encoder sees: the section's titles, then the passage (a title the passage
        already starts with is not repeated)."""
        path = self.title_path
        if path and self.text.startswith(path[-1]):
            path = path[:-1]
        if not path:
            return self.text
        return " > ".join(path) + "\n" + self.text

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.embedding_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Quarantined:
    """A document that could not be indexed, and why. Recorded, never silently dropped."""

    doc_id: str
    source_uri: str
    fingerprint: str
    stage: str  # read | parse | chunk | embed | index
    reason: str  # short code: empty, encrypted, corrupt, too_large, unsupported_type, ...
    detail: str = ""


def doc_hash(doc_id: str) -> str:
    """Stable short hash of a document id, the prefix of its chunks' ``_id``."""
    return hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:24]


def chunk_id(doc_id: str, chunk_no: int) -> str:
    return f"{doc_hash(doc_id)}-{chunk_no}"
