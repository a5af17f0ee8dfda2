"""The extractive answer's sentence selector: every sentence of the retrieved passages is
scored against the question, then a policy decides which - and how many - to keep.

Scores come from the index version's cross-encoder when it has one (the custom reranker;
``ragrec train reranker --rationales`` teaches it (question, evidence sentence) pairs), else
from the cosine of the version's embeddings. A policy keeps the sentences that score within
``gap`` of the best one and at least ``floor``, from the top ``passages`` passages, at most
``max_sentences`` (``per_document`` from one document); when no sentence reaches ``floor``
the answer is a refusal. ``ragrec eval answers`` tunes the policy on validation claims."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ragrec.answers.passages import Passage
from ragrec.answers.sentences import Span


@dataclass(frozen=True)
class SelectionPolicy:
    passages: int = 3
    max_sentences: int = 3
    per_document: int = 3
    gap: float = 0.1
    floor: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> SelectionPolicy:
        return replace(self, **changes)


# Per scorer kind, tuned on SciFact train claims held out of training (ragrec eval answers
# --tune; see README): cross-encoder logits and cosines live on different scales.
DEFAULT_POLICIES = {
    "cross-encoder": SelectionPolicy(passages=3, max_sentences=3, per_document=3,
                                     gap=2.0, floor=0.0),
    "cosine": SelectionPolicy(passages=3, max_sentences=3, per_document=3,
                              gap=0.1, floor=0.3),
}


@dataclass(frozen=True)
class Scored:
    passage: Passage
    span: Span
    score: float


def score_sentences(models, version: str, question: str, question_vector,
                    passages: list[Passage]) -> tuple[list[Scored], str]:
    """Every sentence of ``passages`` with its score, and the scorer's kind."""
    pairs = [(p, s) for p in passages for s in p.sentences]
    if not pairs:
        return [], "none"
    texts = [s.text for _, s in pairs]
    scores = models.rerank(question, texts, version)
    kind = "cross-encoder"
    if scores is None:
        vectors = np.asarray(models.encode(texts, version, "document"),
                             dtype=np.float32)
        scores = vectors @ np.asarray(question_vector, dtype=np.float32)
        kind = "cosine"
    return [Scored(p, s, float(x)) for (p, s), x in zip(pairs, scores, strict=True)], kind


def choose(scored: list[Scored], policy: SelectionPolicy) -> list[Scored]:
    """The kept sentences in reading order (passage, then position); empty: refuse."""
    pool = [c for c in scored if c.passage.number <= policy.passages]
    if not pool:
        return []
    best = max(c.score for c in pool)
    if best < policy.floor:
        return []
    kept: list[Scored] = []
    per_doc: dict[str, int] = {}
    for candidate in sorted(pool, key=lambda c: -c.score):
        if len(kept) >= policy.max_sentences or candidate.score < best - policy.gap:
            break
        if candidate.score < policy.floor:
            break
        doc = candidate.passage.doc_id
        if per_doc.get(doc, 0) >= policy.per_document or any(
                k.passage.doc_id == doc and k.span.text == candidate.span.text for k in kept):
            continue  # overlapping chunks hold a sentence twice
        per_doc[doc] = per_doc.get(doc, 0) + 1
        kept.append(candidate)
    return sorted(kept, key=lambda c: (c.passage.number, c.span.start))
