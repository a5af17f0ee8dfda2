"""The extractive answer's sentence selector judged by held-out chat votes, without judged
claims: for each held-out question (``feedback.chat``), every pair of a sentence voted
helpful and one voted down counts as right when the selector scores the helpful one higher
(a tie counts half). The share right is the selector's pairwise accuracy (0.5: chance),
reported for the cosine selector and a cross-encoder side by side.

Only voted sentences are compared: both were cited, so the selector that logged the
answers chose both. The sentences it passed over would favour it - it ranked them below
what it cited by construction. Measured on SciFact's chat log (41 held-out questions):
counting them, the cosine selector that logged the answers scored 0.982 and a cross-encoder
trained from the votes 0.938, while on judged evidence the cross-encoder's answers were
the better ones (sentence F1 0.3762 vs 0.3623)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

Scorer = Callable[[str, list[str]], np.ndarray]  # (question, sentences) -> scores


def held_out_questions(labels, held_out: Iterable[str]) -> list:
    """The ``feedback.chat.ChatLabels`` questions among ``held_out`` (query keys) with a
    sentence voted helpful and one voted down."""
    keys = set(held_out)
    return [q for key, q in sorted(labels.questions.items())
            if key in keys and q.positives and q.negatives]


def cosine_scorer(encoder) -> Scorer:
    """The cosine selector's scores: the question's vector against each sentence's."""
    def score(question: str, sentences: list[str]) -> np.ndarray:
        asked = np.asarray(encoder.embed([question], role="query").vectors, dtype=np.float32)
        vectors = np.asarray(encoder.embed(sentences).vectors, dtype=np.float32)
        return vectors @ asked[0]
    return score


def pairwise_accuracy(score: Scorer, questions: list) -> dict:
    right, pairs = 0.0, 0
    for question in questions:
        helpful = list(question.positives.values())
        others = list(question.negatives.values())
        scores = score(question.text, helpful + others)
        for good in scores[:len(helpful)]:
            for other in scores[len(helpful):]:
                right += 1.0 if good > other else 0.5 if good == other else 0.0
                pairs += 1
    return {"questions": len(questions), "pairs": pairs,
            "accuracy": round(right / pairs, 4) if pairs else None}
