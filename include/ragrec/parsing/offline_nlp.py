"""Keep ``unstructured`` offline and quiet.

unstructured >= 0.27 downloads the spaCy model ``en_core_web_sm`` the first time it
classifies text, and reports usage analytics unless told not to. ragrec runs where there is
no internet, so before unstructured is imported we opt out of analytics and replace its
sentence/word/part-of-speech helpers with rule-based ones that need no model files (regular
expressions: about 20x cheaper per element than even a blank spaCy pipeline, and parsing
runs on the same cores as the encoder). Part-of-speech tags are empty, so elements that
unstructured would call NarrativeText come out as Text/UncategorizedText: ragrec chunks
both alike.

unstructured's tokenize module imports spaCy at its top, and spaCy imports thinc, which
imports torch where it is installed: 3.8 s and ~300 MB before the first file is parsed, for
functions ragrec replaces anyway. So ragrec's module takes its place in ``sys.modules``
before unstructured is imported, and spaCy is never loaded.
"""

from __future__ import annotations

import re
import sys
import types
from functools import lru_cache

from ragrec.config import UNSTRUCTURED_OFFLINE, set_library_defaults

_installed = False


class ModelDownloadBlocked(RuntimeError):
    pass


# A sentence ends at . ! or ? (closing quotes/brackets included) before whitespace and a
# capital, digit or opening quote/bracket; "e.g. this" stays one sentence.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[A-Z0-9])")
_WORD = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


_ABBREVIATION = re.compile(r"(?:^|\s)(?:Dr|Mr|Mrs|Ms|Prof|Sr|Jr|St|vs|etc|Fig|Figs|No|Eq|al|"
                          r"approx|Ref|Vol|[A-Z])\.$")


@lru_cache(maxsize=4096)
def _sentences(text: str) -> tuple[str, ...]:
    sentences: list[str] = []
    for piece in (p.strip() for p in _SENTENCE_END.split(str(text))):
        if not piece:
            continue
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return tuple(sentences)


def sent_tokenize(text: str) -> list[str]:
    return list(_sentences(text))


@lru_cache(maxsize=4096)
def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(str(text)))


def word_tokenize(text: str) -> list[str]:
    return list(_words(text))


def pos_tag(text: str) -> list[tuple[str, str]]:
    """No tagger offline: every token untagged (unstructured then finds no verbs)."""
    return [(word, "") for word in _words(text)]


def _no_model():
    raise ModelDownloadBlocked("ragrec never loads or downloads spaCy models")


def _tokenize_module() -> types.ModuleType:
    """``unstructured.nlp.tokenize`` with ragrec's helpers and no spaCy."""
    module = types.ModuleType("unstructured.nlp.tokenize",
                              "ragrec's offline stand-in (ragrec.parsing.offline_nlp)")
    module.sent_tokenize = sent_tokenize
    module.word_tokenize = word_tokenize
    module.pos_tag = pos_tag
    module._get_nlp = module._load_spacy_model = module._install_spacy_model = _no_model
    return module


def install() -> None:
    """Idempotent. Call before importing ``unstructured.partition``."""
    global _installed
    if _installed:
        return
    # No telemetry; any model-hub lookup fails at once instead of hanging on a closed network.
    set_library_defaults(UNSTRUCTURED_OFFLINE)
    # Imported already (by someone else): patch it in place; else stand in for it.
    tokenize = sys.modules.setdefault("unstructured.nlp.tokenize", _tokenize_module())
    import unstructured.nlp
    from unstructured.partition import text_type

    unstructured.nlp.tokenize = tokenize
    for module in (tokenize, text_type):
        module.sent_tokenize = sent_tokenize
        module.word_tokenize = word_tokenize
        module.pos_tag = pos_tag
    tokenize._get_nlp = _no_model
    tokenize._load_spacy_model = _no_model
    tokenize._install_spacy_model = _no_model
    _installed = True
