"""The answer path's pure parts: sentence spans, the selection policy, follow-up rewriting,
LLM grounding, and the answer metrics against human-marked evidence."""

from __future__ import annotations

from ragrec.answers.followups import leans_on_history, standalone_query
from ragrec.answers.grounding import ground
from ragrec.answers.passages import Passage
from ragrec.answers.selection import Scored, SelectionPolicy, choose
from ragrec.answers.sentences import sentence_spans
from ragrec.eval.answers import Claim, SentenceMap, score

TEXT = ("Lost devices\n"
        "Report a stolen laptop to the security hotline within one hour. Use the incident "
        "form if the hotline is busy.\n"
        "- Change your passwords from another device, e.g. a colleague's.\n"
        "Short line\n")


def _passage(number=1, text=TEXT, doc="security.md", title="Security incidents"):
    return Passage(number=number, doc_id=doc, title=title, text=text,
                   chunk_id=f"{doc}-{number}", support=0.6)


def test_spans_point_at_the_exact_sentence_and_skip_headings():
    spans = sentence_spans(TEXT, "Security incidents")
    assert [TEXT[s.start:s.end] for s in spans] == [s.text for s in spans]
    assert [s.text for s in spans] == [
        "Report a stolen laptop to the security hotline within one hour.",
        "Use the incident form if the hotline is busy.",
        "Change your passwords from another device, e.g. a colleague's."]


def test_a_line_repeating_the_title_is_not_a_sentence():
    text = "Structural Homeostasis of Dendritic Arbor Geometry in Developing Neurons\n" \
           "Neurons adjust their dendrites to their inputs. This was measured in embryos."
    spans = sentence_spans(text, "Structural Homeostasis of Dendritic Arbor Geometry in "
                                 "Developing Neurons")
    assert [s.text for s in spans] == ["Neurons adjust their dendrites to their inputs.",
                                       "This was measured in embryos."]


def _scored(scores: list[float]) -> list[Scored]:
    passage = _passage()
    spans = passage.sentences
    return [Scored(passage, spans[i], s) for i, s in enumerate(scores)]


def test_chinese_sentences_end_at_full_width_punctuation_without_spaces():
    text = ("笔记本丢失\n"
            "报告丢失后，安全团队会在一小时内联系你。请不要自行登录！你需要帮助吗？"
            "他说：“好的。”然后离开了……真的。\n"
            "The VPN needs a token. See Fig. 2 for details.")
    spans = sentence_spans(text, "笔记本丢失")
    assert [s.text for s in spans] == [
        "报告丢失后，安全团队会在一小时内联系你。", "请不要自行登录！", "你需要帮助吗？",
        "他说：“好的。”", "然后离开了……",  # "真的。" is a fragment under four words
        "The VPN needs a token.", "See Fig. 2 for details."]
    assert all(text[s.start:s.end] == s.text for s in spans)


def test_the_policy_decides_how_many_sentences_to_keep():
    many = choose(_scored([2.0, 1.9, 1.8]), SelectionPolicy(gap=0.5, floor=0.0))
    assert len(many) == 3
    one = choose(_scored([2.0, 0.5, 0.4]), SelectionPolicy(gap=0.5, floor=0.0))
    assert [c.score for c in one] == [2.0]
    capped = choose(_scored([2.0, 1.9, 1.8]), SelectionPolicy(gap=5, floor=0.0,
                                                              max_sentences=2))
    assert [c.score for c in capped] == [2.0, 1.9]
    # Reading order, not score order.
    ordered = choose(_scored([1.0, 2.0, 0.0]), SelectionPolicy(gap=5, floor=-1))
    assert [c.span.start for c in ordered] == sorted(c.span.start for c in ordered)


def test_nothing_over_the_floor_is_a_refusal():
    assert choose(_scored([0.1, 0.2, 0.05]), SelectionPolicy(gap=1, floor=0.5)) == []


def test_a_follow_up_carries_the_topic_and_a_new_question_does_not():
    history = [{"question": "my laptop was stolen at the airport, what do I do first?",
                "standalone_query": "my laptop was stolen at the airport, what do I do first?",
                "citations": [{"title": "Security incidents"}]}]
    follow = standalone_query("and who do I tell about it?", history)
    assert follow.startswith("and who do I tell about it?")
    for word in ("laptop", "stolen", "airport", "security", "incidents"):
        assert word in follow
    fresh = "how many weeks of parental leave do new fathers get"
    assert not leans_on_history(fresh)
    assert standalone_query(fresh, history) == fresh
    assert standalone_query("and who do I tell?", []) == "and who do I tell?"


def test_a_chinese_follow_up_carries_the_topic_as_chinese_phrases():
    """Chinese has no spaces: a run is cut at function characters into phrases; a turn
    leaning on the last (a closing 呢, 它 "it", too few words of its own) gets the last
    turn's phrases and the cited title, a question on its own is searched as asked; two
    wordings of one thing share content words (character bigrams)."""
    from ragrec.answers.words import content_words

    history = [{"question": "出差住酒店的费用怎么报销？",
                "standalone_query": "出差住酒店的费用怎么报销？",
                "citations": [{"title": "差旅报销制度"}]}]
    assert standalone_query("那住宿标准呢？", history) == \
        "那住宿标准呢？ 出差住酒店 费用 报销 差旅报销制度"
    assert leans_on_history("它多少钱？")
    fresh = "笔记本电脑被偷了应该怎么做？"
    assert not leans_on_history(fresh) and standalone_query(fresh, history) == fresh
    assert {"住宿", "费用", "上限"} <= set(content_words("一线城市每晚住宿费用上限为六百元")) \
        & set(content_words("住宿费用的上限是多少"))


def test_grounding_removes_unknown_citations_and_flags_unsupported_sentences():
    passages = [_passage(1), _passage(2, "Hotel costs are refunded up to 150 euros a night "
                                         "with an itemised receipt.", "travel.md", "Travel")]
    text = ("Report the stolen laptop to the security hotline within one hour [1]. "
            "Hotels are refunded up to 150 euros a night [2][7]. "
            "The moon is made of cheese [2]. Always be kind.")
    cleaned, sentences, removed = ground(text, passages)
    assert removed == [7]
    body, note = cleaned.split("\n\n")
    assert "[7]" not in body and "[1]" in body and "[2]" in body
    assert note == "(Citation [7] named no retrieved passage and was removed.)"
    first, second, moon, kind = sentences
    assert first.supported and second.supported
    assert not moon.supported and not kind.supported and kind.citations == []
    span = first.citations[0]
    assert passages[0].text[span.start:span.end].startswith("Report a stolen laptop")
    assert [c.number for c in second.citations] == [2]


def test_answer_metrics_follow_scifacts_sentence_selection_rule():
    sentences = {"d1": ["Alpha causes beta in mice.", "Methods were standard.",
                        "Beta rose twofold."],
                 "d2": ["Gamma is unrelated.", "Nothing here."]}
    mapping = SentenceMap(sentences)
    assert mapping.locate("d1", "Beta  rose\ntwofold.") == 2
    assert mapping.locate("d1", "Methods were standard") == 1
    assert mapping.locate("d2", "completely different words") is None
    claims = [Claim("1", "alpha beta", {"d1": {0, 2}}), Claim("2", "gamma", {}),
              Claim("3", "delta", {"d2": {0}})]
    rows = [(claims[0], {("d1", 0), ("d1", 1)}, 0.1),  # one right, one wrong
            (claims[1], set(), 0.2),  # refused: right for a claim without evidence
            (claims[2], set(), 0.3)]  # refused: missed evidence
    metrics = score(rows)
    assert metrics["sentence_precision"] == 0.5
    assert metrics["sentence_recall"] == round(1 / 3, 4)
    assert metrics["sentence_f1"] == round(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3), 4)
    assert metrics["evidence_abstract_recall"] == 0.5
    assert metrics["claims_citing_evidence"] == 0.5
    assert metrics["refusal_rate_without_evidence"] == 1.0
    assert metrics["refusal_rate_with_evidence"] == 0.5
