"""Relevance labels from a cleaned click log (``sessions.SessionLog``), corrected for
position bias:

* **propensities** are fitted on the whole log (``propensity.fit``: examination does not
  depend on which queries are held out);
* each (query, document) pair's **relevance estimate** is its inverse-propensity-weighted
  click rate: the clicks it earned, each divided by the examination propensity of the
  position it was clicked at, over the sessions of the query. A result clicked at
  position 8 counts as much as it would have at the top; clipped at ``MAX_GAIN``, so one
  lucky deep click cannot outweigh everything else;
* **skipped-above negatives**: results shown above a click and not clicked in that session
  (and never clicked for the query): seen, judged worse, passed over;
* **held-out traffic**: the queries first seen last (the latest days), at most a fifth of
  the queries, kept out of training to pick epochs and weights on and to evaluate
  candidates without labels (``eval.counterfactual``).

``correction="none"`` is the naive reading (every position examined alike): a pair's
estimate is its plain click rate, and training takes every clicked pair as a positive. A
log whose bias could not be measured (too little exploration: ``Propensities.identified``)
is read naively too, and ``report()`` says ``applied: "none"``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ragrec.feedback.propensity import Propensities, fit
from ragrec.feedback.sessions import Session, SessionLog

MAX_GAIN = 1.0
CORRECTIONS = ("ipw", "none")


@dataclass
class QueryLabels:
    text: str
    sessions: int
    first_seen: str
    gains: dict[str, float] = field(default_factory=dict)  # doc id -> relevance estimate
    clicks: dict[str, int] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)  # skipped above a click, never clicked


@dataclass
class ClickLabels:
    train: dict[str, QueryLabels]  # query key -> labels
    held_out: dict[str, QueryLabels]
    propensities: Propensities
    correction: str
    counts: dict[str, int]

    @property
    def applied(self) -> str:
        """The correction the gains carry: ``ipw`` only where the bias was measured."""
        return "ipw" if self.correction == "ipw" and self.propensities.identified else "none"

    def report(self) -> dict:
        pairs = sum(len(q.gains) for q in self.train.values())
        return {"correction": self.correction, "applied": self.applied,
                "propensities": self.propensities.to_dict(),
                "train_queries": len(self.train), "train_pairs": pairs,
                "held_out_queries": len(self.held_out),
                "skipped_above_negatives": sum(len(q.skipped) for q in self.train.values()),
                "sessions": {k: v for k, v in sorted(self.counts.items())}}

    def qrels(self, part: str = "held_out") -> tuple[dict[str, str], dict[str, dict]]:
        """(query id -> text, query id -> {doc id: gain}) of one part: the query keys are
        the ids."""
        labels = self.held_out if part == "held_out" else self.train
        return ({k: q.text for k, q in labels.items() if q.gains},
                {k: dict(q.gains) for k, q in labels.items() if q.gains})


def held_out_keys(log: SessionLog, holdout: int) -> set[str]:
    """The ``holdout`` queries first seen last, at most a fifth of the queries (ties in
    time broken by the query, so the split is the same on every run)."""
    first: dict[str, str] = {}
    for session in log.sessions:
        if session.query not in first or session.ts < first[session.query]:
            first[session.query] = session.ts
    if not holdout or len(first) < 5:
        return set()
    count = min(holdout, len(first) // 5)
    return set(sorted(first, key=lambda q: (first[q], q))[-count:])


def build(log: SessionLog, holdout: int = 150, correction: str = "ipw",
          propensities: Propensities | None = None) -> ClickLabels:
    """Labels of every query with sessions, split into train and held-out traffic."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, not {correction!r}")
    if propensities is None:
        propensities = fit(((s.query, s.shown[p]), p, p in s.clicked)
                           for s in log.sessions for p in s.shown)
    # Unmeasured bias is not corrected: a curve fitted on too little exploration can be off
    # by any factor, and its weights would amplify the noise (the report says which).
    used = propensities if correction == "ipw" and propensities.identified \
        else Propensities.uniform()
    by_query: dict[str, list[Session]] = defaultdict(list)
    for session in log.sessions:
        by_query[session.query].append(session)
    held = held_out_keys(log, holdout)
    train, held_out = {}, {}
    for key, sessions in by_query.items():
        labels = _labels(key, log.texts.get(key, key), sessions, used)
        (held_out if key in held else train)[key] = labels
    return ClickLabels(train, held_out, propensities, correction, dict(log.counts))


def _labels(key: str, text: str, sessions: list[Session], propensities: Propensities
            ) -> QueryLabels:
    weighted: dict[str, float] = defaultdict(float)
    clicks: dict[str, int] = defaultdict(int)
    passed: set[str] = set()
    for session in sessions:
        for position in session.clicked:
            doc = session.shown[position]
            weighted[doc] += propensities.weight(position)
            clicks[doc] += 1
        if session.clicked:
            lowest = max(session.clicked)
            clicked_docs = {session.shown[p] for p in session.clicked}
            passed.update(d for p, d in session.shown.items()
                          if p < lowest and d not in clicked_docs)
    gains = {doc: round(min(MAX_GAIN, total / len(sessions)), 6)
             for doc, total in weighted.items()}
    return QueryLabels(text, len(sessions), min(s.ts for s in sessions), gains, dict(clicks),
                       passed - set(clicks))
