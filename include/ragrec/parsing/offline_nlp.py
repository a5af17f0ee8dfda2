"""Keep ``unstructured`` offline and quiet.

unstructured >= 0.27 downloads the spaCy model ``en_core_web_sm`` the first time it
classifies text, and reports usage analytics unless told not to. ragrec runs where there is
no internet, so before unstructured is imported we opt out of analytics and give it a
rule-based English pipeline (spaCy's blank tokenizer + sentencizer) that needs no model
files. Sentence splitting keeps working; part-of-speech tags are empty, so elements that
unstructured would call NarrativeText come out as Text/UncategorizedText: ragrec chunks
both alike.
"""

from __future__ import annotations

import os
from functools import lru_cache

_installed = False


class ModelDownloadBlocked(RuntimeError):
    pass


@lru_cache(maxsize=1)
def _blank_english():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def install() -> None:
    """Idempotent. Call before importing ``unstructured.partition``."""
    global _installed
    if _installed:
        return
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    # Any model-hub lookup fails at once instead of hanging on a closed network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from unstructured.nlp import tokenize

    def refuse_download() -> None:
        raise ModelDownloadBlocked("ragrec never downloads NLP models at run time")

    tokenize._get_nlp = _blank_english
    tokenize._load_spacy_model = _blank_english
    tokenize._install_spacy_model = refuse_download
    _installed = True
