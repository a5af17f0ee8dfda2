"""Parsing never reaches for a model file or the network: unstructured's spaCy hooks are
replaced by rule-based ones, and language detection only runs when asked for."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from ragrec.parsing import ParseSettings, offline_nlp, parse_document
from ragrec.records import ParsedDocument, SourceObject

MARKDOWN = b"""# Trial results

## Methods

Patients were randomised, e.g. by site. Dr. Smith led the trial. "Dosing was weekly." Then
the follow-up began in 2019! Was it blinded? Yes.

## Outcome

Mortality fell by 12 percent.
"""


def _obj(key: str, data: bytes) -> SourceObject:
    return SourceObject(f"file:///tmp/{key}", key, len(data), "f1", datetime.now(UTC))


@pytest.fixture
def no_models_no_network(monkeypatch):
    import spacy

    def refuse(*_args, **_kwargs):
        raise AssertionError("a spaCy model or the network was reached for")

    monkeypatch.setattr(spacy, "load", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_markdown_parses_offline_with_titles(no_models_no_network):
    parsed = parse_document(_obj("trial.md", MARKDOWN), MARKDOWN)
    assert isinstance(parsed, ParsedDocument)
    body = [e for e in parsed.elements if "randomised" in e.text]
    assert body and body[0].title_path == ("Trial results", "Methods")
    assert any(e.text == "Mortality fell by 12 percent." and
               e.title_path == ("Trial results", "Outcome") for e in parsed.elements)


def test_language_detection_is_opt_in(no_models_no_network, monkeypatch):
    from unstructured.partition.common import lang

    calls = []
    real = lang.detect_langs
    monkeypatch.setattr(lang, "detect_langs", lambda text: calls.append(text) or real(text))
    parse_document(_obj("a.md", MARKDOWN), MARKDOWN)
    assert calls == []
    parse_document(_obj("b.md", MARKDOWN), MARKDOWN, ParseSettings(languages=("auto",)))
    assert len(calls) == 1


def test_sentence_rules():
    text = ('Patients were randomised, e.g. by site. Dr. Smith led it. "Dosing was weekly." '
            "Then it began in 2019! Was it blinded? yes, partly.")
    assert offline_nlp.sent_tokenize(text) == [
        "Patients were randomised, e.g. by site.",
        "Dr. Smith led it.",
        '"Dosing was weekly."',
        "Then it began in 2019!",
        "Was it blinded? yes, partly.",
    ]
    assert offline_nlp.word_tokenize("Don't split co-op 3.5 words, ok?") == [
        "Don't", "split", "co-op", "3.5", "words", ",", "ok", "?"]
    assert offline_nlp.pos_tag("two words") == [("two", ""), ("words", "")]


def test_a_parser_whose_module_is_missing_quarantines_for_a_retry(monkeypatch):
    """A missing Python module is the environment's fault, not the file's: the record names
    the module and is retried on the next run (not sticky like a corrupt file)."""
    import ragrec.parsing as parsing
    from ragrec.indexing.quarantine_store import is_sticky
    from ragrec.records import Quarantined

    def missing(*_args, **_kwargs):
        raise ModuleNotFoundError("No module named 'cv2'", name="cv2")

    monkeypatch.setattr(parsing, "_partition", missing)
    result = parse_document(_obj("memo.pdf", b"%PDF-1.4 something"), b"%PDF-1.4 something")
    assert isinstance(result, Quarantined)
    assert (result.stage, result.reason) == ("parse", "parser_unavailable")
    assert "cv2" in result.detail and ".pdf" in result.detail
    assert not is_sticky(result.stage, result.reason)


def test_parsing_never_loads_spacy_or_torch(tmp_path):
    """unstructured's tokenize module imports spaCy (and through thinc, torch where it is
    installed) at its top; ragrec's stand-in keeps both out of an ingest process, which
    parses every format without them."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from ragrec.parsing import parse_document\n"
        "from ragrec.records import ParsedDocument, SourceObject\n"
        f"data = {MARKDOWN!r}\n"
        "for key in ('a.md', 'a.txt', 'a.html'):\n"
        "    obj = SourceObject('file:///x/' + key, key, len(data), 'f', datetime.now(UTC))\n"
        "    assert isinstance(parse_document(obj, data), ParsedDocument), key\n"
        "print(sorted(m for m in ('spacy', 'thinc', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
