"""Token chunking: sizes, model limit, overlap, structure, word boundaries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ragrec.chunking import Chunker, ChunkSettings, ChunkTooLong, budget_encoding
from ragrec.records import Element, ParsedDocument, SourceObject

WORDS = ("retrieval embedding passage vector index query model token chunk alias shard "
         "document policy travel network security answer cluster refresh bulk").split()


def doc(*elements: Element) -> ParsedDocument:
    obj = SourceObject("file:///x.txt", "x.txt", 1, "f", datetime.now(UTC))
    return ParsedDocument(obj, tuple(elements), "sha")


def sentences(count: int, seed: int = 0) -> str:
    out = []
    for i in range(count):
        words = [WORDS[(i * 7 + j * 3 + seed) % len(WORDS)] for j in range(12)]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def normalised(text: str) -> str:
    return " ".join(text.split())


def assert_whole_words(chunk_text: str, source_text: str) -> None:
    body = normalised(chunk_text)
    start = source_text.find(body)
    assert start >= 0, f"chunk text is not a contiguous span of the source: {body[:80]!r}"
    end = start + len(body)
    assert start == 0 or source_text[start - 1] == " ", "chunk starts mid-word"
    assert end == len(source_text) or source_text[end] == " ", "chunk ends mid-word"


def test_chunks_respect_size_and_the_model_input_limit(model_tokenizer):
    chunker = Chunker(model_tokenizer, ChunkSettings(size=512, overlap=64))
    parsed = doc(*(Element(sentences(20, seed=i), "NarrativeText") for i in range(10)))
    chunks = chunker.chunk(parsed)
    assert len(chunks) > 5
    encoding = budget_encoding()
    for chunk in chunks:
        assert chunk.token_count == len(encoding.encode_ordinary(chunk.text)) <= 512
        measured = model_tokenizer.count([chunk.embedding_text])[0]
        assert chunk.model_token_count == measured <= model_tokenizer.max_content_tokens
    assert [c.chunk_no for c in chunks] == list(range(len(chunks)))


def test_configured_size_is_a_hard_cap(model_tokenizer):
    chunker = Chunker(model_tokenizer, ChunkSettings(size=100, overlap=10))
    chunks = chunker.chunk(doc(Element(sentences(60), "NarrativeText")))
    assert max(c.token_count for c in chunks) <= 100
    assert len(chunks) >= 7


def test_consecutive_chunks_overlap_and_never_split_words(model_tokenizer):
    text = sentences(80)
    chunker = Chunker(model_tokenizer, ChunkSettings(size=120, overlap=30))
    chunks = chunker.chunk(doc(*(Element(s.strip() + ".", "NarrativeText")
                                 for s in text.split(".") if s.strip())))
    source = normalised(" ".join(s.strip() + "." for s in text.split(".") if s.strip()))
    for chunk in chunks:
        assert_whole_words(chunk.text, source)
    overlapping = sum(
        1 for a, b in zip(chunks, chunks[1:], strict=False)
        if normalised(b.text).split(". ")[0] in normalised(a.text)
    )
    assert overlapping >= len(chunks) - 2


def test_a_long_element_without_punctuation_is_split_at_words_within_the_limit(
    model_tokenizer,
):
    words = " ".join(f"term{i} " + WORDS[i % len(WORDS)] for i in range(1500))
    chunks = Chunker(model_tokenizer).chunk(doc(Element(words, "Table")))
    assert len(chunks) >= 8
    for chunk in chunks:
        assert chunk.model_token_count <= model_tokenizer.max_content_tokens
        assert_whole_words(chunk.text, words)
    assert normalised(" ".join(c.text for c in chunks)) == words  # nothing lost


def test_sections_start_new_chunks_and_carry_their_title_path(model_tokenizer):
    parsed = doc(
        Element("Travel", "Title"),
        Element(sentences(30, 1), "NarrativeText", 1, ("Travel",)),
        Element("Security", "Title"),
        Element(sentences(30, 2).upper(), "NarrativeText", 2, ("Security",)),
    )
    chunks = Chunker(model_tokenizer, ChunkSettings(size=400, overlap=40)).chunk(parsed)
    security = [c for c in chunks if c.title_path == ("Security",)]
    travel = [c for c in chunks if c.title_path == ("Travel",) or c.title_path == ()]
    assert security and travel
    assert security[0].text.startswith("Security")
    assert all(c.page == 2 for c in security)
    assert all(sentences(30, 1)[:40] not in c.text for c in security)
    assert security[0].embedding_text.startswith("Security\n")


def test_a_word_longer_than_the_model_input_is_refused_not_truncated(model_tokenizer):
    blob = "x" * 5000 + "Q" * 3000  # one 'word' of thousands of word pieces
    with pytest.raises(ChunkTooLong, match="cannot"):
        Chunker(model_tokenizer).chunk(doc(Element(blob, "NarrativeText")))


def test_overlap_must_be_below_half_the_size():
    with pytest.raises(ValueError):
        ChunkSettings(size=100, overlap=60)


PHRASES = ("安全团队", "会在一小时内", "联系你", "请先报告", "笔记本电脑", "丢失的情况",
           "然后更改密码", "差旅费用", "需要在一个月内", "提交给财务部门")


def chinese_sentences(count: int) -> str:
    """Chinese sentences as Chinese is written: no spaces, full-width punctuation."""
    ends = "。！？；"
    return "".join("".join(PHRASES[(i * 3 + j) % len(PHRASES)] for j in range(5)) + ends[i % 4]
                   for i in range(count))


def test_chinese_is_split_at_its_own_punctuation_and_joined_without_spaces(model_tokenizer):
    text = chinese_sentences(120)
    chunker = Chunker(model_tokenizer, ChunkSettings(size=200, overlap=0))
    chunks = chunker.chunk(doc(Element(text, "NarrativeText")))
    assert len(chunks) >= 4
    for chunk in chunks:
        assert chunk.model_token_count <= model_tokenizer.max_content_tokens
        assert chunk.token_count <= 200
        assert " " not in chunk.text  # pieces of Chinese are joined as it is written
        assert chunk.text[-1] in "。！？；"  # every chunk ends a sentence
    assert "".join(c.text for c in chunks) == text  # nothing lost, nothing added


def test_a_long_chinese_run_without_punctuation_is_split_between_characters(
        model_tokenizer):
    text = "".join(PHRASES[i % len(PHRASES)] for i in range(400))  # ~1,900 characters
    chunks = Chunker(model_tokenizer, ChunkSettings(size=300, overlap=0)).chunk(
        doc(Element(text, "NarrativeText")))
    assert len(chunks) >= 4
    for chunk in chunks:
        assert chunk.model_token_count <= model_tokenizer.max_content_tokens
    assert "".join(c.text for c in chunks) == text
