"""The chat's feedback as the sentence selector's labels, on stored turns whose citations are
known: a vote on a cited document labels the sentences the answer cited from it (helped and
up: answered; down: did not), a user's latest vote counts once, a tie is dropped, bots,
junk questions, expired and unknown turns are dropped with a count; the labels become
(question, helpful sentence) examples whose negatives are the down-voted sentences, then
sentences of the cited passages the answer passed over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ragrec.feedback import chat
from ragrec.models.training_data import TrainingSet, add_chat_feedback

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
VPN = ("Reset the token in the portal. The VPN client then asks for a new code. "
       "Older clients must be updated first.")
TRAVEL = "Hotels are booked through the travel desk. Receipts go to finance within a month."


def _turn(question: str, expires: datetime = NOW + timedelta(days=30)) -> dict:
    """An extractive answer citing the first sentence of each of two passages."""
    return {"question": question, "standalone_query": question,
            "expires_at": expires.isoformat(),
            "passages": [{"number": 1, "doc_id": "vpn.md", "title": "VPN", "text": VPN},
                         {"number": 2, "doc_id": "travel.md", "title": "", "text": TRAVEL}],
            "sentences": [
                {"text": "Reset the token in the portal.", "citations": [
                    {"number": 1, "doc_id": "vpn.md", "chunk_id": "c1", "start": 0,
                     "end": 30}]},
                {"text": "Hotels are booked through the travel desk.", "citations": [
                    {"number": 2, "doc_id": "travel.md", "chunk_id": "c2", "start": 0,
                     "end": 42}]}]}


def _vote(kind, doc, user="u1", conversation="c-1", turn=1, minute=0):
    return {"type": kind, "doc_id": doc, "user_id": user, "conversation_id": conversation,
            "turn": turn, "ts": f"2026-12-07T10:{minute:02d}:00+00:00"}


RESET = chat.sentence_id("vpn.md", "Reset the token in the portal.")
HOTELS = chat.sentence_id("travel.md", "Hotels are booked through the travel desk.")
NEW_CODE = chat.sentence_id("vpn.md", "The VPN client then asks for a new code.")
UPDATE = chat.sentence_id("vpn.md", "Older clients must be updated first.")
RECEIPTS = chat.sentence_id("travel.md", "Receipts go to finance within a month.")


def test_votes_label_the_sentences_the_answer_cited_from_that_document():
    turns = {("c-1", 1): _turn("How do I fix the VPN token?"),
             ("c-2", 1): _turn("how do I  fix the VPN token?"),  # the same question
             ("c-3", 1): _turn("How do I fix the VPN token?", expires=NOW - timedelta(1)),
             ("c-4", 1): _turn("?!"),
             ("c-5", 1): _turn("How do I fix the VPN token?")}
    events = [_vote("helped", "vpn.md"), _vote("down", "travel.md"),
              _vote("helped", "vpn.md", user="u4", conversation="c-5"),
              # u2 first says the VPN answer did not help, then that it did: the latest counts
              _vote("down", "vpn.md", user="u2", conversation="c-2", minute=1),
              _vote("up", "vpn.md", user="u2", conversation="c-2", minute=2),
              # u2 liked the travel sentence, u1 did not: a tie, dropped
              _vote("up", "travel.md", user="u2", conversation="c-2", minute=3),
              _vote("helped", "vpn.md", user="u3", conversation="c-3"),  # expired turn
              _vote("helped", "vpn.md", user="u3", conversation="c-9"),  # no such turn
              _vote("up", "vpn.md", user="u3", conversation="c-4"),  # junk question
              {**_vote("up", "vpn.md"), "conversation_id": None}]  # names no turn
    events += [_vote("up", "vpn.md", user="bot", conversation="c-1", minute=n % 60)
               for n in range(501)]  # one user, 501 votes in a day

    built = chat.build(events, turns, now=NOW)
    assert list(built.questions) == ["how do i fix the vpn token?"]
    labels = built.questions["how do i fix the vpn token?"]
    assert labels.text == "How do I fix the VPN token?"  # as most turns wrote it
    assert labels.positives == {RESET: "Reset the token in the portal."}
    assert labels.negatives == {}  # travel: one up, one down
    # The cited passages' other sentences, never voted on.
    assert set(labels.context) == {NEW_CODE, UPDATE, RECEIPTS}
    counts = built.counts
    assert counts["feedback_turn_expired"] == 1 and counts["feedback_turn_not_found"] == 1
    assert counts["feedback_without_turn"] == 1
    assert counts["feedback_junk_question_dropped"] == 1
    assert counts["feedback_bot_users_dropped"] == 1
    assert counts["feedback_bot_events_dropped"] == 501
    assert counts["feedback_repeat_votes_replaced"] == 1 and counts["feedback_ties_dropped"] == 1
    assert built.report()["positive_sentences"] == 1


def _two_questions() -> chat.ChatLabels:
    """The VPN question's answer: its source helped, the travel one voted down; the hotel
    question's: its (travel) source helped."""
    turns = {("c-1", 1): _turn("How do I fix the VPN token?"),
             ("c-2", 1): _turn("Where do hotel bookings go?")}
    events = [_vote("helped", "vpn.md"), _vote("down", "travel.md"),
              _vote("helped", "travel.md", conversation="c-2")]
    return chat.build(events, turns, now=NOW)


def test_helpful_sentences_become_examples_with_down_voted_then_passed_over_negatives():
    built = _two_questions()
    training = TrainingSet([], {}, "events")
    added = add_chat_feedback(training, built, held_out=["where do hotel bookings go?"],
                              in_passage=2)
    assert added == 1 and training.source == "events + chat feedback (1 helpful sentences)"
    example = training.examples[0]
    assert (example.query, example.positive) == ("How do I fix the VPN token?", RESET)
    assert example.negatives[0] == HOTELS  # the thumbs-down comes first
    assert len(example.negatives) == 3
    assert set(example.negatives[1:]) <= {NEW_CODE, UPDATE, RECEIPTS}
    assert training.documents[RESET] == "Reset the token in the portal."
    assert all(n in training.documents for n in example.negatives)


def test_a_selector_is_judged_by_how_often_it_scores_the_helpful_sentence_above_the_others():
    from ragrec.eval.chat_votes import held_out_questions, pairwise_accuracy

    built = _two_questions()
    # The hotel question has no sentence voted down: nothing to compare its helpful one with
    # (the sentences passed over were ranked below it by the selector that answered).
    held = held_out_questions(built, ["how do i fix the vpn token?", "no such question",
                                      "where do hotel bookings go?"])
    assert [q.text for q in held] == ["How do I fix the VPN token?"]
    # One helpful sentence against the one voted down: 1 pair.
    by_length = pairwise_accuracy(lambda q, texts: [float(len(t)) for t in texts], held)
    # "Reset the token in the portal." (30 characters) is shorter than the hotel sentence.
    assert by_length == {"questions": 1, "pairs": 1, "accuracy": 0.0}
    first_wins = pairwise_accuracy(lambda q, texts: [1.0] + [0.0] * (len(texts) - 1), held)
    assert first_wins["accuracy"] == 1.0
    ties = pairwise_accuracy(lambda q, texts: [0.0] * len(texts), held)
    assert ties["accuracy"] == 0.5
