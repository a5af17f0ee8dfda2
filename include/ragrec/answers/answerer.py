"""One answer path for ``/ask``, ``/chat`` and ``ragrec eval answers``: the question (made
standalone when it follows earlier turns) is ranked by ``retrieval.Searcher`` under the
served spec, the passages below ``min_support`` are dropped, and the answer is built from
the rest - extractively by the sentence selector, or by an LLM and then grounded.

Refusal: when no passage reaches ``min_support`` (the best cosine between the query and a
retrieved passage), or the selector finds no sentence over its floor, the answer says it
cannot answer instead of guessing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ragrec.answers import followups, llm
from ragrec.answers.grounding import ground
from ragrec.answers.passages import AnswerSentence, Citation, Passage
from ragrec.answers.selection import (
    DEFAULT_POLICIES,
    Scored,
    SelectionPolicy,
    choose,
    score_sentences,
)
from ragrec.config import LlmSettings
from ragrec.retrieval import Searcher, SearchSpec

REFUSAL = "I cannot answer that from the indexed documents: nothing relevant enough was found."


@dataclass
class Context:
    """What an answer is drawn from."""

    question: str
    query: str  # the standalone retrieval query
    version: str
    spec: SearchSpec
    passages: list[Passage]  # those over min_support, numbered from 1
    support: float
    query_vector: np.ndarray = field(repr=False)
    history: list[dict] = field(default_factory=list, repr=False)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Answer:
    context: Context
    text: str
    mode: str  # "extractive" | "llm" | "refused"
    sentences: list[AnswerSentence] = field(default_factory=list)
    scorer: str | None = None
    removed_citations: list[int] = field(default_factory=list)
    scored: list[Scored] = field(default_factory=list, repr=False)  # for tuning

    @property
    def cited_numbers(self) -> list[int]:
        return sorted({c.number for s in self.sentences for c in s.citations})

    def to_dict(self, min_support: float) -> dict:
        ctx = self.context
        numbers = set(self.cited_numbers)
        payload = {"question": ctx.question, "standalone_query": ctx.query,
                   "model_version": ctx.version, "support": round(ctx.support, 4),
                   "min_support": min_support, "answer": self.text, "mode": self.mode,
                   "sentences": [s.to_dict() for s in self.sentences],
                   "citations": [p.to_dict() for p in ctx.passages if p.number in numbers],
                   "passages": [p.to_dict() for p in ctx.passages],
                   "timings_ms": ctx.timings}
        if self.scorer:
            payload["selector"] = self.scorer
        if self.removed_citations:
            payload["removed_citations"] = self.removed_citations
        return payload


class Answerer:
    def __init__(self, searcher: Searcher, min_support: float = 0.3,
                 llm_settings: LlmSettings | None = None,
                 policies: dict[str, SelectionPolicy] | None = None):
        self.searcher = searcher
        self.models = searcher.models
        self.min_support = min_support
        self.llm = llm_settings
        self.policies = dict(DEFAULT_POLICIES if policies is None else policies)

    def standalone(self, question: str, history: list[dict]) -> str:
        if not history:
            return question
        if self.llm is not None:
            try:
                rewritten = llm.complete(self.llm, llm.condense_messages(question, history),
                                         max_tokens=64)
            except llm.LlmError:
                rewritten = ""
            if rewritten:
                return " ".join(rewritten.split())[:2000]
        return followups.standalone_query(question, history)

    def retrieve(self, alias: str, question: str, spec_of: Callable[[SearchSpec], SearchSpec],
                 k: int = 5, filters: list[dict] | None = None,
                 history: list[dict] | None = None) -> Context:
        started = time.monotonic()
        history = history or []
        query = self.standalone(question, history)
        rewritten = time.monotonic()
        version, served = self.searcher.served(alias)
        ranking = self.searcher.search(alias, query, spec_of(served), k, filters,
                                       version=version)
        searched = time.monotonic()
        vector = np.asarray(self.models.encode([query], version)[0], dtype=np.float32)
        hits = ranking.hits
        support = [h.scores.get("dense") for h in hits]
        missing = [i for i, s in enumerate(support) if s is None]
        if missing:
            vectors = np.asarray(self.models.encode([hits[i].text for i in missing], version,
                                                    "document"), dtype=np.float32)
            for i, value in zip(missing, vectors @ vector, strict=True):
                support[i] = float(value)
        usable = [(h, s) for h, s in zip(hits, support, strict=True) if s >= self.min_support]
        passages = [Passage(number=n, doc_id=h.doc_id, title=h.title, text=h.text,
                            chunk_id=h.id, support=round(float(s), 4))
                    for n, (h, s) in enumerate(usable, start=1)]
        timings = {"rewrite": _ms(started, rewritten), "search": _ms(rewritten, searched),
                   "support": _ms(searched, time.monotonic())}
        return Context(question, query, version, ranking.spec, passages,
                       max(support, default=0.0), vector, history, timings)

    def refusal(self, ctx: Context) -> Answer:
        return Answer(ctx, REFUSAL, "refused")

    def extractive(self, ctx: Context, policy: SelectionPolicy | None = None) -> Answer:
        if not ctx.passages:
            return self.refusal(ctx)
        started = time.monotonic()
        # Only the passages a policy may quote are scored (both kinds' policies, since the
        # scorer's kind is known only once it has scored).
        reach = policy.passages if policy else max(
            (p.passages for p in self.policies.values()), default=SelectionPolicy().passages)
        scored, kind = score_sentences(self.models, ctx.version, ctx.query, ctx.query_vector,
                                       [p for p in ctx.passages if p.number <= reach])
        chosen = choose(scored, policy or self.policies.get(kind, SelectionPolicy()))
        ctx.timings["select"] = _ms(started, time.monotonic())
        if not chosen:
            answer = self.refusal(ctx)
            answer.scorer, answer.scored = kind, scored
            return answer
        sentences = [AnswerSentence(c.span.text, [Citation.of(c.passage, c.span)],
                                    score=c.score) for c in chosen]
        text = " ".join(f"{s.text} [{s.citations[0].number}]" for s in sentences)
        return Answer(ctx, text, "extractive", sentences, kind, scored=scored)

    def messages(self, ctx: Context) -> list[dict]:
        history = [{"question": t["question"], "answer": t["answer"]} for t in ctx.history]
        return llm.build_messages(ctx.question, ctx.passages, history)

    def deltas(self, ctx: Context) -> Iterator[str]:
        """The LLM's answer as it streams (raises ``llm.LlmError``)."""
        started = time.monotonic()
        yield from llm.stream_chat(self.llm, self.messages(ctx))
        ctx.timings["generate"] = _ms(started, time.monotonic())

    def grounded(self, ctx: Context, text: str) -> Answer:
        cleaned, sentences, removed = ground(text, ctx.passages)
        return Answer(ctx, cleaned, "llm", sentences, removed_citations=removed)

    def answer(self, alias: str, question: str, spec_of: Callable[[SearchSpec], SearchSpec],
               k: int = 5, filters: list[dict] | None = None,
               history: list[dict] | None = None) -> Answer:
        """The whole path, not streamed."""
        ctx = self.retrieve(alias, question, spec_of, k, filters, history)
        if not ctx.passages:
            return self.refusal(ctx)
        if self.llm is None:
            return self.extractive(ctx)
        return self.grounded(ctx, "".join(self.deltas(ctx)))


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 1)
