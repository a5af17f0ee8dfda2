"""Chinese (Han) text as the rest of ragrec measures and cuts it: written without spaces,
sentences ending in full-width punctuation, so "words" are characters where no space
separates them. Shared by the chunker and the answer's sentence splitter."""

from __future__ import annotations

import re

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
SENTENCE_ENDS = "。！？；…"
CLOSING_QUOTES = "”’」』）》"
# Word-like pieces: one Han character each, a run of anything else that is not a space.
_PIECES = re.compile(rf"[{HAN}]|[^\s{HAN}]+")
_HAN_EDGE = re.compile(rf"[{HAN}{SENTENCE_ENDS}{CLOSING_QUOTES}，、：]")


def word_pieces(text: str) -> list[str]:
    """Words, a Han character counting as one."""
    return _PIECES.findall(text)


def word_count(text: str) -> int:
    return len(_PIECES.findall(text))


def joiner(left: str, right: str) -> str:
    """What goes between two pieces of one text when they are joined again: nothing where
    either side is Chinese (no spaces there), else a space."""
    if left and right and (_HAN_EDGE.fullmatch(left[-1]) or _HAN_EDGE.fullmatch(right[0])):
        return ""
    return " "
