"""Sentences of a passage with their character spans, so a citation can name the exact
source sentence (``text[start:end]``) and a page can highlight it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragrec.cjk import CLOSING_QUOTES, SENTENCE_ENDS, word_count

# A sentence ends at . ! or ? followed by space and a capital, digit, quote or bracket;
# or at Chinese full-width punctuation (。！？；…, and a closing quote after it), with or
# without a space. Common abbreviations ("e.g.", "Fig.", "et al.") do not end one.
_BOUNDARY = re.compile(rf"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])"
                       rf"|(?<=[{SENTENCE_ENDS}])(?![{CLOSING_QUOTES}{SENTENCE_ENDS}])\s*"
                       rf"|(?<=[{SENTENCE_ENDS}][{CLOSING_QUOTES}])\s*")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|vs|etc|Fig|Figs|Dr|Mr|Mrs|Ms|No|approx|al|"
                           r"ca|cf|Eq|Ref|St|Inc|Ltd|Co)\.)$")
_CLOSERS = ".!?:;)]\"'" + SENTENCE_ENDS + CLOSING_QUOTES + "："
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)]|#+)\s+")


@dataclass(frozen=True)
class Span:
    start: int  # offsets into the passage text
    end: int
    text: str


def sentence_spans(text: str, title: str = "", min_words: int = 4) -> list[Span]:
    """The passage's sentences in order. A line that repeats the title, or a short line
    without closing punctuation, is a heading and never glued onto the sentence after it;
    list bullets are not part of a sentence; fragments under ``min_words`` are dropped (a
    Han character counts as a word)."""
    spans: list[Span] = []
    title = " ".join(title.split())
    offset = 0
    for line in text.splitlines(keepends=True):
        start_of_line = offset
        offset += len(line)
        body = line.rstrip("\r\n")
        bullet = _BULLET.match(body)
        lead = bullet.end() if bullet else len(body) - len(body.lstrip())
        content = body[lead:].rstrip()
        if not content:
            continue
        normalised = " ".join(content.split())
        if normalised == title or (content[-1] not in _CLOSERS
                                   and word_count(content) <= 8):
            continue
        for start, end in _split_line(content):
            piece = content[start:end]
            if word_count(piece) >= min_words:  # a Han character counts as a word
                at = start_of_line + lead + start
                spans.append(Span(at, at + len(piece), piece))
    return spans


def _split_line(line: str) -> list[tuple[int, int]]:
    pieces, start = [], 0
    for match in _BOUNDARY.finditer(line):
        if _ABBREVIATION.search(line[start:match.start()]):
            continue
        pieces.append((start, match.start()))
        start = match.end()
    pieces.append((start, len(line)))
    return [(s, e) for s, e in pieces if e > s]
