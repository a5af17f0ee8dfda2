"""A Chinese index on the real node: the shipped Chinese samples ingested with ``--language
zh`` get the ``cjk`` analyzer (character bigrams) and say so in ``_meta``; BM25 finds the
document a Chinese question is about, whose passage holds the answering sentence whole;
the extractive answer quotes whole Chinese sentences; an incremental run asking for another
language is refused with one line."""

from __future__ import annotations

import pytest

QUESTIONS = {  # question -> the sample that answers it, and a phrase of the answer
    "报销单最晚什么时候提交？": ("travel-expenses.md", "三十天内"),
    "笔记本电脑丢了应该怎么办？": ("security-incidents.md", "一小时内"),
    "VPN 令牌验证失败怎么处理？": ("remote-access.md", "重置令牌"),
}


@pytest.fixture
def chinese_index(es, index_name, cleanup_alias):
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.sources import open_source
    from ragrec.sources.samples import chinese_samples_dir
    from ragrec.sync import IngestOptions, Ingestor

    cleanup_alias(index_name)
    encoder = encoder_for(base_model_dir(), "onnx")

    def ingest(**options):
        return Ingestor(es, encoder, ModelTokenizer(base_model_dir()),
                        IngestOptions(show_progress=False, **options)
                        ).ingest(open_source(str(chinese_samples_dir())), index_name)

    summary = ingest(language="zh")
    assert summary.docs_new == 3 and summary.docs_quarantined == 0
    return index_name, encoder, ingest


def test_a_chinese_index_reads_bigrams_and_answers_in_whole_sentences(es, chinese_index):
    from ragrec.answers.answerer import Answerer
    from ragrec.indexing import versions
    from ragrec.retrieval import PinnedModels, Searcher, SearchSpec
    from ragrec.retrieval.searcher import bm25
    from ragrec.sources.samples import chinese_samples_dir

    alias, encoder, _ = chinese_index
    live = versions.current_version(es, alias)
    mapping = es.indices.get_mapping(index=live)[live]["mappings"]
    assert mapping["properties"]["text"]["analyzer"] == "cjk"
    assert mapping["_meta"]["ragrec"]["language"] == "zh"
    tokens = es.indices.analyze(index=live, field="text", text="报销流程")["tokens"]
    assert [t["token"] for t in tokens] == ["报销", "销流", "流程"]

    answerer = Answerer(Searcher(es, PinnedModels(encoder)), min_support=0.0)
    for question, (document, phrase) in QUESTIONS.items():
        assert bm25(es, alias, question, 3)[0].doc_id == document, question
        answer = answerer.answer(alias, question, lambda served: SearchSpec("bm25"), k=3)
        assert answer.mode == "extractive", question
        assert answer.context.passages[0].doc_id == document
        # The answering sentence is one of the top passage's (which one the selector picks
        # is the encoder's business: the bundled English model reads Chinese poorly).
        assert any(phrase in span.text for span in answer.context.passages[0].sentences)
        for sentence in answer.sentences:  # whole sentences, as written (no spaces added)
            source = (chinese_samples_dir() / sentence.citations[0].doc_id).read_text()
            assert sentence.text[-1] in "。！？；" and sentence.text in source


def test_asking_another_language_of_a_live_index_is_refused(chinese_index):
    from ragrec.sync import IngestError

    _, _, ingest = chinese_index
    with pytest.raises(IngestError, match="built for language 'zh' .*run with --full"):
        ingest(language="en")
    assert ingest().docs_unchanged == 3  # no language asked: the live index's


def test_the_chinese_base_builds_a_chinese_index_and_answers_from_it(es, index_name,
                                                                     cleanup_alias):
    """With the Chinese base and no language asked the index is Chinese (the base's
    language); dense search alone finds each question's document, the answer quotes the
    sentence that answers it, and the index's model version resolves to the base for
    serving (no registry needed)."""
    from conftest import catalogue_base
    from ragrec.answers.answerer import Answerer
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.indexing import versions
    from ragrec.models.registry import version_uri
    from ragrec.models.resolver import ModelResolver
    from ragrec.retrieval import Searcher, SearchSpec
    from ragrec.sources import open_source
    from ragrec.sources.samples import chinese_samples_dir
    from ragrec.sync import IngestOptions, Ingestor

    folder = catalogue_base("bge-small-zh-v15-q")
    cleanup_alias(index_name)
    encoder = encoder_for(folder, "onnx")
    Ingestor(es, encoder, ModelTokenizer(folder), IngestOptions(show_progress=False)
             ).ingest(open_source(str(chinese_samples_dir())), index_name)
    meta = versions.index_meta(es, versions.current_version(es, index_name))
    assert meta["language"] == "zh" and meta["model_version"] == "bge-small-zh-v15-q-base"
    assert version_uri("bge-small-zh-v15-q-base", None) == "base:bge-small-zh-v15-q"
    answerer = Answerer(Searcher(es, ModelResolver()), min_support=0.0)
    for question, (document, phrase) in QUESTIONS.items():
        answer = answerer.answer(index_name, question, lambda served: SearchSpec("dense"),
                                 k=3)
        assert answer.context.passages[0].doc_id == document, question
        quoted = [s.text for s in answer.sentences]
        assert any(phrase in text for text in quoted), (question, quoted)
