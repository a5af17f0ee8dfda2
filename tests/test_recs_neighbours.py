"""Collaborative neighbours from an interaction log (``ragrec.recs``): what people consume
together ranks first, a blockbuster does not crowd out real co-consumption, a user's newest
items weigh most, and what they already have is never recommended."""

from __future__ import annotations

import pytest

from ragrec.recs import neighbours as nb
from ragrec.recs.interactions import Event, Interactions, event_of, recency_profile

DAY = 86400.0


def _log() -> list[Event]:
    """Ten users watch a blockbuster; three of them pair 'alien' with 'aliens', three pair
    'heat' with 'ronin'; one user has only 'alien'."""
    events = []
    for n in range(10):
        events.append(Event(f"u{n}", "blockbuster", n * DAY))
    for n in range(3):
        events += [Event(f"u{n}", "alien", n * DAY + 1), Event(f"u{n}", "aliens", n * DAY + 2)]
    for n in range(3, 6):
        events += [Event(f"u{n}", "heat", n * DAY + 1), Event(f"u{n}", "ronin", n * DAY + 2)]
    events.append(Event("fan", "alien", 20 * DAY))
    return events


@pytest.mark.parametrize("learn", [
    lambda x, items: nb.cooccurrence(x, items, shrink=0.0),
    lambda x, items: nb.ease(x, items, l2=1.0)], ids=["cooccurrence", "ease"])
def test_what_people_consume_together_ranks_first_and_seen_items_are_left_out(learn):
    data = Interactions.build(_log(), items=["unseen-new-title"])
    model = learn(data.matrix, data.items)
    assert model.of("alien")[0][0] == "aliens"
    assert model.of("heat")[0][0] == "ronin"
    scores = model.scores(data.profile("fan"))
    ranked = sorted(scores, key=lambda item: -scores[item])
    assert ranked[0] == "aliens" and "alien" not in scores
    assert model.of("unseen-new-title") == []  # no behaviour: left to content candidates


def test_popularity_normalisation_keeps_a_blockbuster_below_real_co_consumption():
    data = Interactions.build(_log())
    model = nb.cooccurrence(data.matrix, data.items, shrink=0.0, alpha=0.5)
    weights = dict(model.of("alien"))
    # 'blockbuster' co-occurs with 'alien' as often as 'aliens' does (3 users), but it is
    # everyone's: cosine puts it below.
    assert weights["aliens"] > weights["blockbuster"] > 0
    assert len(model.of("blockbuster")) <= 100


def test_neighbour_lists_are_cut_to_n():
    data = Interactions.build(_log())
    for learn in (nb.cooccurrence, nb.ease):
        model = learn(data.matrix, data.items, n=1)
        assert all(len(model.of(item)) <= 1 for item in data.items)


def test_a_users_newest_items_weigh_most():
    profile = recency_profile(["a", "b", "a", "c"], half_life=1.0)
    assert list(profile) == ["c", "a", "b"]  # distinct, newest first
    assert profile == {"c": 1.0, "a": 0.5, "b": 0.25}
    assert set(recency_profile(["a", "b"], None).values()) == {1.0}


def test_calendar_decay_weighs_old_events_less_and_stored_events_parse():
    events = [Event("u", "old", 0.0), Event("u", "new", 30 * DAY)]
    data = Interactions.build(events, half_life_days=30.0)
    history = data.history("u")
    assert history["new"] == pytest.approx(1.0) and history["old"] == pytest.approx(0.5)
    stored = event_of({"user_id": "u", "doc_id": "d", "ts": "2026-03-01T00:00:00+00:00"})
    assert stored == Event("u", "d", 1772323200.0)


def test_cold_slots_take_the_last_places_and_never_repeat_an_item():
    from ragrec.recs.cold_start import with_cold_slots

    ranked = ["a", "b", "c", "d"]
    assert with_cold_slots(ranked, ["x", "y"], 3, 1) == ["a", "b", "x"]
    assert with_cold_slots(ranked, ["x", "y"], 3, 2) == ["a", "x", "y"]
    assert with_cold_slots(ranked, ["b", "x"], 3, 2) == ["a", "b", "x"]  # b: once
    assert with_cold_slots(ranked, [], 3, 1) == ["a", "b", "c"]  # no cold: the ranking's
    assert with_cold_slots(ranked, ["x"], 3, 0) == ["a", "b", "c"]
    assert with_cold_slots(["a"], ["x", "y"], 3, 1) == ["a", "x"]
