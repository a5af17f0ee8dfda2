"""A follow-up as a standalone retrieval query.

With an LLM configured, a condense step rewrites it (``llm.condense_messages``). Without
one the rewrite is deterministic: a turn that leans on the conversation - a pronoun or
demonstrative ("it", "that", "they"), an elliptic opening ("and ...", "what about ..."), or
fewer than three content words of its own - gets the content words of the previous turn's
standalone query and the title of the document that turn cited first appended, so the
search sees the topic the user is still talking about. A question that stands on its own is
searched as it is (a change of topic must not drag the old one along). Chinese turns lean
the same ways (它 "it", 那个 "that one", an opening 那/还有 "and", a closing 呢 "what
about"); the phrases carried are Chinese phrases, not bigrams (``words.content_phrases``)."""

from __future__ import annotations

import re

from ragrec.answers.words import content_phrases, content_words

_LEANING = re.compile(
    r"\b(it|its|it's|that|this|these|those|they|them|their|there|he|she|him|her|one|ones|"
    r"same|such|then|also|too|else|other|another)\b|^(and|but|or|so|what about|how about|"
    r"and what|and how|and who|and when|and where|what if|why|how come)\b", re.IGNORECASE)
# Chinese: pronouns and demonstratives ("it", "this one", "they"), an elliptic opening
# ("and", "then", "also") or a closing 呢 ("what about ...?").
_LEANING_ZH = re.compile(r"它|这个|那个|这些|那些|这种|那种|他们|她们|其中|^(那|那么|还有|另外|"
                         r"而且|并且|同样)|呢[？?。]?$")
CARRIED_WORDS = 8


def leans_on_history(question: str) -> bool:
    text = question.strip()
    return bool(_LEANING.search(text) or _LEANING_ZH.search(text)) \
        or len(content_words(question)) < 3


def standalone_query(question: str, history: list[dict]) -> str:
    """``history``: the earlier turns, oldest first, each with ``standalone_query`` and
    ``citations`` (their ``title``)."""
    if not history or not leans_on_history(question):
        return question
    last = history[-1]
    own = set(content_phrases(question))
    carried = [w for w in content_phrases(last.get("standalone_query") or last["question"])
               if w not in own][:CARRIED_WORDS]
    titles = [c.get("title") for c in last.get("citations") or [] if c.get("title")]
    if titles:
        seen = own | set(carried)
        carried += [w for w in content_phrases(titles[0]) if w not in seen]
    return " ".join([question, *carried]) if carried else question
