"""The chat's feedback as labels for the sentence selector: ``up``/``down`` (an answer's
thumbs, one event per cited document) and ``helped`` (one cited source) from
``<alias>-events``, joined by ``(conversation_id, turn)`` to the turn
``<alias>-conversations`` holds. The turn names which of the answer's sentences came from
that document (its citations: a span of a retrieved passage), so each vote labels
(standalone question, source sentence) pairs - what the selector scores
(``answers.selection``): ``helped`` and ``up`` say the sentence answered, ``down`` that it
did not. The cited passages' other sentences, which the selector passed over, are kept as
context (the learner's in-passage negatives).

Cleaned as the click log is (``sessions``): junk questions dropped; a bot (more than
``bot_sessions_per_day`` feedback events in one UTC day) dropped whole; questions collapse by
``query_key``; one user counts once per (question, sentence), by their latest vote; a
sentence voted both ways takes the majority, a tie is dropped. Turns past their retention
(``expires_at``) are not read: what a user was promised is deleted is not learned from.
Every drop is counted."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ragrec.answers.sentences import sentence_spans
from ragrec.feedback.sessions import (
    SessionSettings,
    drop_junk_and_bots,
    events_index,
    query_key,
)

FEEDBACK_TYPES = {"up": 1, "helped": 1, "down": 0}
MGET_BATCH = 500


@dataclass
class QuestionLabels:
    text: str  # the standalone question as most turns wrote it
    positives: dict[str, str] = field(default_factory=dict)  # sentence id -> text
    negatives: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)  # passed over, never voted


@dataclass
class ChatLabels:
    questions: dict[str, QuestionLabels]  # question key -> labels
    counts: dict[str, int]

    def training(self, held_out) -> dict[str, QuestionLabels]:
        """The questions to learn from: those with a helpful sentence, not in ``held_out``
        (query keys of the held-out traffic), in key order."""
        return {key: q for key, q in sorted(self.questions.items())
                if q.positives and key not in held_out}

    def report(self) -> dict:
        return {"questions": len(self.questions),
                "positive_sentences": sum(len(q.positives) for q in self.questions.values()),
                "negative_sentences": sum(len(q.negatives) for q in self.questions.values()),
                "events": dict(sorted(self.counts.items()))}


def sentence_id(doc_id: str, text: str) -> str:
    """A source sentence's id: its document and a hash of its text (the same sentence cited
    by two turns, or from two overlapping chunks, is one sentence)."""
    return f"{doc_id}#{hashlib.sha1(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class _Vote:
    user: str
    ts: str
    question: str  # as the turn wrote it
    doc_id: str
    label: int
    turn_key: tuple[str, int]
    turn: dict


def read_feedback(client, alias: str) -> list[dict]:
    """The feedback events of ``alias`` that name a conversation turn (oldest first)."""
    from elasticsearch import helpers

    index = events_index(alias)
    if not client.indices.exists(index=index):
        return []
    events = [hit["_source"] for hit in helpers.scan(
        client, index=index, size=2000,
        query={"query": {"terms": {"type": sorted(FEEDBACK_TYPES)}}})]
    return sorted(events, key=lambda e: e.get("ts") or "")


def read_turns(client, alias: str, keys: Iterable[tuple[str, int]]) -> dict[tuple, dict]:
    """The stored turns ``(conversation_id, turn)`` (by id, as the API reads them)."""
    from ragrec.answers.conversations import conversations_index

    index = conversations_index(alias)
    wanted = sorted(set(keys))
    if not wanted or not client.indices.exists(index=index):
        return {}
    found = {}
    for start in range(0, len(wanted), MGET_BATCH):
        batch = wanted[start:start + MGET_BATCH]
        response = client.mget(index=index, ids=[f"{c}:{t}" for c, t in batch])
        for key, doc in zip(batch, response["docs"], strict=True):
            if doc.get("found"):
                found[key] = doc["_source"]
    return found


def build(events: list[dict], turns: dict[tuple, dict],
          settings: SessionSettings | None = None,
          now: datetime | None = None) -> ChatLabels:
    """Labels from feedback ``events`` and the ``turns`` they name (``read_turns``)."""
    settings, now = settings or SessionSettings(), now or datetime.now(UTC)
    counts = Counter()
    votes: list[_Vote] = []
    for event in events:
        key = (event.get("conversation_id"), event.get("turn"))
        if not key[0] or key[1] is None:
            counts["feedback_without_turn"] += 1
            continue
        turn = turns.get(key)
        if turn is None:
            counts["feedback_turn_not_found"] += 1
            continue
        expires = turn.get("expires_at")
        if expires and datetime.fromisoformat(expires) <= now:
            counts["feedback_turn_expired"] += 1
            continue
        question = (turn.get("standalone_query") or turn.get("question") or "").strip()
        votes.append(_Vote(event.get("user_id") or "", event.get("ts") or "", question,
                           event["doc_id"], FEEDBACK_TYPES[event["type"]], key, turn))
    counts["feedback_read"] = len(votes)
    votes = drop_junk_and_bots(
        votes, lambda v: v.question, lambda v: v.user, lambda v: v.ts, settings, counts,
        ("feedback_junk_question_dropped", "feedback_bot_users_dropped",
         "feedback_bot_events_dropped"))
    return _labels(votes, counts)


def _cited(turn: dict, doc_id: str) -> tuple[list[str], list[str]]:
    """The source sentences the turn's answer cited from ``doc_id``, and the other sentences
    of the passages they came from."""
    passages = {p["number"]: p for p in turn.get("passages") or []}
    cited, numbers = [], set()
    for sentence in turn.get("sentences") or []:
        for citation in sentence.get("citations") or []:
            passage = passages.get(citation.get("number"))
            if citation.get("doc_id") != doc_id or passage is None:
                continue
            text = passage["text"][citation["start"]:citation["end"]].strip()
            if text and text not in cited:
                cited.append(text)
                numbers.add(passage["number"])
    others = [s.text for n in sorted(numbers)
              for s in sentence_spans(passages[n]["text"], passages[n].get("title") or "")
              if s.text not in cited]
    return cited, others


def _labels(votes: list[_Vote], counts: Counter) -> ChatLabels:
    latest: dict[tuple[str, str, str], int] = {}  # (user, question, sentence) -> label
    texts: dict[str, str] = {}
    forms: dict[str, Counter] = defaultdict(Counter)  # one count per turn
    context: dict[str, dict[str, str]] = defaultdict(dict)
    for vote in votes:  # oldest first: a user's later vote replaces an earlier one
        key = query_key(vote.question)
        forms[key][(vote.question, vote.turn_key)] = 1
        cited, others = _cited(vote.turn, vote.doc_id)
        if not cited:
            counts["feedback_nothing_cited_from_document"] += 1
            continue
        for text in cited:
            sid = sentence_id(vote.doc_id, text)
            texts[sid] = text
            if (vote.user, key, sid) in latest:
                counts["feedback_repeat_votes_replaced"] += 1
            latest[(vote.user, key, sid)] = vote.label
        for text in others:
            context[key].setdefault(sentence_id(vote.doc_id, text), text)
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (_user, key, sid), label in latest.items():
        tally[(key, sid)][label] += 1
    questions: dict[str, QuestionLabels] = {}
    for (key, sid), (down, up) in sorted(tally.items()):
        if up == down:
            counts["feedback_ties_dropped"] += 1
            continue
        labels = questions.setdefault(key, QuestionLabels(_most_written(forms[key])))
        (labels.positives if up > down else labels.negatives)[sid] = texts[sid]
    for key, labels in questions.items():
        voted = labels.positives.keys() | labels.negatives.keys()
        labels.context = {s: t for s, t in sorted(context[key].items()) if s not in voted}
    return ChatLabels(questions, dict(counts))


def _most_written(turns: Counter) -> str:
    """The form most turns wrote a question in (ties: the first in sort order)."""
    written = Counter(question for question, _turn in turns)
    return max(sorted(written), key=written.__getitem__)


def read_chat_labels(client, alias: str, settings: SessionSettings | None = None
                     ) -> ChatLabels:
    """The sentence labels of ``alias``'s chat feedback (see the module)."""
    events = read_feedback(client, alias)
    keys = [(e["conversation_id"], e["turn"]) for e in events
            if e.get("conversation_id") and e.get("turn") is not None]
    return build(events, read_turns(client, alias, keys), settings)
