"""Every document in ../shared/data/docs through the real pipeline into the real node:
indexed with sensible text, or quarantined with a true reason."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from conftest import SHARED_DATA
from ragrec.chunking import Chunker
from ragrec.parsing import ParseSettings, parse_document
from ragrec.records import Quarantined
from ragrec.sources import LocalSource

DOCS = SHARED_DATA / "docs"
pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason=f"test data missing: {DOCS}")
LIMIT = 1_300_000  # bytes; the three largest files exceed it (see test_huge_files_...)

QUARANTINED = {
    "eml__empty.eml": ("empty", "empty"),
    "eml__fake-encrypted.eml": ("encrypted", "multipart/encrypted"),
    "empty.xlsx": ("empty", "no extractable text"),
    "fake-text-all-whitespace.txt": ("empty", "whitespace"),
    "fake.doc": ("unsupported_type", "LibreOffice"),
    "file_we_dont_want_imported": ("unsupported_type", "without an extension"),
    "password_protected.xlsx": ("encrypted", "password-protected"),
    "pdf__password.pdf": ("encrypted", "password"),
    "pdf__single_table.pdf": ("empty", "only images"),
    "book-war-and-peace-1225p.txt": ("too_large", "limit"),
    "example-10k.html": ("too_large", "limit"),
    "pdf__DA-619p.pdf": ("too_large", "limit"),
}
# A phrase each readable file must yield (decoded correctly: no mojibake).
EXPECTED_TEXT = {
    "fake-text.txt": "This is a test document to use for unit tests",
    "fake-text-utf-16.txt": "This is a test document to use for unit tests",
    "fake-text-utf-32.txt": "This is a test document to use for unit tests",
    "fake-html-cp1252.html": "Some text with CP1252-specific characters",
    "umlauts-non-utf8.md": "können",
    "umlauts-utf8.md": "können",
    "norwich-city.txt": "Huddersfield Town",
    "fake-email.eml": "This is a test email to use for unit tests",
    "fake-email.msg": "This is a test email to use for unit tests",
    "eml__fake-email-attachment.eml": "Here's the attachments!",
    "fake-doc.rtf": "My first paragraph",
    "fake.odt": "Lorem ipsum dolor sit amet",
    "winter-sports.epub": "Winter Sports in Switzerland",
    "stanley-cups.xlsx": "Maple Leafs",
    "stanley-cups.csv": "Maple Leafs",
    "simple.json": "favorite things",
    "docx-tables.docx": "Simple uniform table",
    "handbook-872p.docx": "United States Trustee",
    "language-docs__fr_olap.pdf": "interrogations de logs de requêtes OLAP",
    "pdf__korean-text-with-tables.pdf": "할인점",
    "pdf__failure-after-repair.pdf": "",  # any text: pdfminer fails, the fallback reads it
    "sample-presentation.pptx": "This is the first content slide",
    "vodafone.xlsx": "Quarterly revenue",
    "factbook.xml": "Washington",
    "codeblock.md": "<!DOCTYPE html>",
}


@pytest.fixture(scope="module")
def docs_index(tmp_path_factory, make_ingestor_module, es, request):
    alias = "ragrec-test-formats"
    folder = tmp_path_factory.mktemp("formats") / "docs"
    shutil.copytree(DOCS, folder)
    ingestor = make_ingestor_module(parse=ParseSettings(max_bytes=LIMIT))
    summary = ingestor.ingest(LocalSource(folder), alias)
    yield alias, summary
    for name in es.indices.get(index=f"{alias}--*", expand_wildcards="all"):
        es.indices.delete(index=name)


def _all_files():
    if not DOCS.is_dir():
        return []
    return sorted(p.name for p in DOCS.iterdir() if p.is_file())


def test_every_file_is_accounted_for(docs_index):
    _, summary = docs_index
    files = _all_files()
    assert summary.docs_seen == len(files) == summary.docs_new
    assert summary.docs_quarantined == len(QUARANTINED)
    assert {q["doc_id"] for q in summary.quarantined} == set(QUARANTINED)


@pytest.mark.parametrize("name", sorted(QUARANTINED))
def test_quarantine_reason_is_true(docs_index, name, es):
    alias, summary = docs_index
    record = next(q for q in summary.quarantined if q["doc_id"] == name)
    reason, phrase = QUARANTINED[name]
    assert record["reason"] == reason
    assert phrase.lower() in record["detail"].lower()
    assert es.count(index=alias, query={"term": {"doc_id": name}})["count"] == 0


@pytest.mark.parametrize("name", [n for n in _all_files() if n not in QUARANTINED])
def test_readable_file_is_indexed_with_sensible_text(docs_index, name, es):
    alias, _ = docs_index
    hits = es.search(index=alias, size=10000, query={"term": {"doc_id": name}},
                     source=["text", "chunk_no", "chunk_count", "model_token_count"])
    chunks = sorted((h["_source"] for h in hits["hits"]["hits"]), key=lambda s: s["chunk_no"])
    assert chunks, f"{name} has no chunks"
    assert [c["chunk_no"] for c in chunks] == list(range(chunks[0]["chunk_count"]))
    text = " ".join(" ".join(c["text"].split()) for c in chunks)
    assert sum(ch.isalpha() for ch in text) >= 3
    assert "â€" not in text and "Ã¶" not in text  # no UTF-8-read-as-cp1252 mojibake
    assert max(c["model_token_count"] for c in chunks) <= 254
    expected = EXPECTED_TEXT.get(name)
    if expected:
        assert expected in text


@pytest.mark.parametrize("name", ["book-war-and-peace-1225p.txt", "example-10k.html"])
def test_huge_files_parse_and_chunk_within_limits(name, model_tokenizer):
    """What the size limit keeps out of the index above still parses when allowed."""
    source = LocalSource(DOCS)
    obj = next(o for o in source.list() if o.key == name)
    parsed = parse_document(obj, source.read(obj))
    assert not isinstance(parsed, Quarantined)
    chunks = Chunker(model_tokenizer).chunk(parsed)
    assert len(chunks) > 150
    assert max(c.model_token_count for c in chunks) <= model_tokenizer.max_content_tokens
    limited = parse_document(obj, source.read(obj), replace(ParseSettings(), max_bytes=1000))
    assert isinstance(limited, Quarantined) and limited.reason == "too_large"


def test_a_pdf_header_over_a_broken_body_is_corrupt_not_empty():
    from datetime import UTC, datetime

    from ragrec.records import SourceObject

    data = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    obj = SourceObject("file:///kb/broken.pdf", "broken.pdf", len(data), "x",
                       datetime(2026, 12, 1, tzinfo=UTC))
    parsed = parse_document(obj, data)
    assert isinstance(parsed, Quarantined)
    assert (parsed.reason, parsed.stage) == ("corrupt", "parse")
    assert "pypdf" in parsed.detail
