"""An LLM's answer checked against the passages it was given, sentence by sentence.

* A citation ``[n]`` that names no retrieved passage is removed, and the answer says so.
* Each remaining citation is pinned to the cited passage's sentence that shares the most
  content words with the answer sentence (the span the page highlights).
* A sentence is supported when it cites a passage and at least ``min_overlap`` of its content
  words occur in the passages it cites; other sentences are flagged ``supported: false``.
"""

from __future__ import annotations

import re

from ragrec.answers.passages import AnswerSentence, Citation, Passage
from ragrec.answers.sentences import sentence_spans
from ragrec.answers.words import content_words

_MARK = re.compile(r"\s*\[(\d+)\]")
MIN_OVERLAP = 0.5


def ground(text: str, passages: list[Passage],
           min_overlap: float = MIN_OVERLAP) -> tuple[str, list[AnswerSentence], list[int]]:
    """The answer text with unknown citations removed (and a note saying so), its
    sentences with citations, and the removed passage numbers."""
    by_number = {p.number: p for p in passages}
    removed: list[int] = []
    sentences: list[AnswerSentence] = []
    for span in sentence_spans(text, min_words=1) or []:
        numbers = [int(n) for n in _MARK.findall(span.text)]
        removed += [n for n in numbers if n not in by_number]
        cited = [by_number[n] for n in dict.fromkeys(numbers) if n in by_number]
        plain = _MARK.sub("", span.text).strip()
        words = content_words(plain)
        citations = [Citation.of(p, best) for p in cited
                     if (best := _closest(words, p)) is not None]
        if cited and words:
            found = set().union(*(content_words(p.text) for p in cited))
            supported = sum(w in found for w in words) / len(words) >= min_overlap
        else:
            supported = bool(cited)
        sentences.append(AnswerSentence(plain, citations, supported))
    removed = sorted(set(removed))
    cleaned = text
    if removed:
        cleaned = re.sub(r"[ \t]*\[(\d+)\]",
                         lambda m: "" if int(m.group(1)) in removed else m.group(0), text)
        marks = ", ".join(f"[{n}]" for n in removed)
        cleaned += (f"\n\n(Citation{'s' if len(removed) > 1 else ''} {marks} named no "
                    "retrieved passage and " + ("were" if len(removed) > 1 else "was")
                    + " removed.)")
    return cleaned, sentences, removed


def _closest(words: list[str], passage: Passage):
    if not passage.sentences:
        return None
    wanted = set(words)
    return max(passage.sentences,
               key=lambda s: len(wanted & set(content_words(s.text))))
