"""Content words: what follow-up rewriting carries over and grounding checks look for.

Chinese is written without spaces: a run of Han characters is cut at function characters
(particles, pronouns, question words: ``FUNCTION_HAN``) into phrases, and a phrase's content
words are its character bigrams - the units the index's ``cjk`` analyzer matches on - so
that two wordings of the same thing share words."""

from __future__ import annotations

import re

from ragrec.cjk import HAN

_WORD = re.compile(rf"[{HAN}]+|[^\W_]+(?:['\u2019-][^\W_]+)*", re.UNICODE)
_HAN_RUN = re.compile(rf"[{HAN}]+")
FUNCTION_HAN = frozenset("的地得了着过吗呢吧啊呀嘛是在和与及或也都就还又这那哪它他她我你您们"
                         "个么什怎谁把被给对从向于为而且请")
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing done down during each else few
for from further get gets got had has have having he her here hers herself him himself his how
i if in into is it its itself just let me more most my myself no nor not now of off on once
only or other our ours ourselves out over own please same she should so some still such than
that the their theirs them themselves then there these they this those through to too under
until up us very want was we were what when where which while who whom whose why will with
would you your yours yourself yourselves ok okay hi hello thanks thank tell know need yes
one ones anything something someone anyone thing things way really much many
""".split())


def _han_phrases(run: str) -> list[str]:
    phrases, current = [], ""
    for char in run:
        if char in FUNCTION_HAN:
            phrases.append(current)
            current = ""
        else:
            current += char
    return [p for p in [*phrases, current] if p]


def content_phrases(text: str) -> list[str]:
    """Lower-cased words that carry meaning, in order, without repeats; a Chinese phrase
    (a Han run between function characters) counts as one."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if _HAN_RUN.fullmatch(word):
            for phrase in _han_phrases(word):
                seen.setdefault(phrase, None)
        elif word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


def content_words(text: str) -> list[str]:
    """Lower-cased words that carry meaning, in order, without repeats; a Chinese phrase
    gives its character bigrams (a one-character phrase itself)."""
    seen: dict[str, None] = {}
    for phrase in content_phrases(text):
        if _HAN_RUN.fullmatch(phrase) and len(phrase) > 1:
            for at in range(len(phrase) - 1):
                seen.setdefault(phrase[at:at + 2], None)
        else:
            seen.setdefault(phrase, None)
    return list(seen)
