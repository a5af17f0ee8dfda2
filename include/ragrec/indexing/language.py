"""The language an index is built for, and so how BM25 reads its text: ``en`` with the
``english`` analyzer (stemming, stop words), ``zh`` with ``cjk`` (overlapping character
bigrams: Chinese is written without spaces between words). ``auto`` takes the encoder's
base: a Chinese base (``embedding.bases``: languages ``zh``) builds a Chinese index. The
choice is recorded in the index's ``_meta`` (``language``); an incremental run keeps the
live index's, and asking for another is refused (a new analyzer needs ``--full``). Queries
need nothing: Elasticsearch analyses a query with the field's own analyzer."""

from __future__ import annotations

import json
from pathlib import Path

ANALYZERS = {"en": "english", "zh": "cjk"}
CHOICES = (*ANALYZERS, "auto")


class LanguageError(ValueError):
    pass


def analyzer_for(language: str) -> str:
    return ANALYZERS[language]


def encoder_language(embedder) -> str:
    """``zh`` for an encoder whose base reads Chinese and not English, else ``en``."""
    folder = getattr(embedder, "model_dir", None)
    if folder is None:
        return "en"
    from ragrec.embedding.bases import CATALOGUE

    for card in (Path(folder) / "ragrec-model.json", Path(folder).parent / "ragrec-model.json"):
        if card.is_file():
            # An installed base's card holds its record; a version's names its base.
            data = json.loads(card.read_text())
            named = CATALOGUE.get(data.get("base_encoder") or "")
            languages = data.get("base", {}).get("languages") \
                or (list(named.languages) if named else [])
            if languages:
                return "zh" if "zh" in languages and "en" not in languages else "en"
    return "en"


def resolve(asked: str | None, live_meta: dict | None, embedder) -> str:
    """The language to build with: ``asked`` (``auto``: the encoder's), else the live
    index's, else the encoder's. ``live_meta``: the live index's ``_meta`` (None: no index
    yet, or a full rebuild)."""
    if asked is not None and asked not in CHOICES:
        raise LanguageError(f"unknown index language {asked!r}: use one of {CHOICES}")
    if asked == "auto" or (asked is None and live_meta is None):
        return encoder_language(embedder)
    return asked or live_meta.get("language") or "en"
