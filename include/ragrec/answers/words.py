"""Content words: what follow-up rewriting carries over and grounding checks look for."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*", re.UNICODE)
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


def content_words(text: str) -> list[str]:
    """Lower-cased words that carry meaning, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)
