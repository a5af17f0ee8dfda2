"""Behaviour as labels, on synthetic logs whose truth is known: the examination curve is
recovered from a log with an exploration slice (and said to be unknown without one);
clicks are weighted by it; results skipped above a click are negatives; bots, junk queries,
a user's repeats and a session's extra clicks are dropped or capped with a count; the queries
first seen last are held out; the counterfactual nDCG ranks a ranking that puts clicked
documents first above one that does not."""

from __future__ import annotations

import random

import pytest

from ragrec.eval import counterfactual
from ragrec.feedback import exploration, labels, sessions
from ragrec.feedback.propensity import fit

TRUTH = (0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06)


def _synthetic_log(queries=400, per_query=10, explore=0.2, examination=TRUTH, seed=3):
    """Events of a position-based click model: one relevant result per query (clicked with
    probability 1 when examined), the others clicked 10 % of the times they are examined;
    ``explore`` of the answers swap two results as the API's slice does."""
    rng = random.Random(seed)
    explorer = exploration.Explorer(explore, random.Random(seed + 1))
    events, relevant = [], {}
    for q in range(queries):
        query, docs = f"question {q}", [f"doc-{q}-{n}" for n in range(10)]
        relevant[query] = docs[rng.randrange(10)]
        for s in range(per_query):
            shown = exploration.apply(docs, explorer.draw(10))
            common = {"query": query, "user_id": f"user-{s}", "trace_id": f"t-{q}-{s}",
                      "ts": f"2026-11-{1 + q * 28 // queries:02d}T10:00:{s:02d}+00:00"}
            for position, doc in enumerate(shown):
                events.append({**common, "type": "impression", "doc_id": doc,
                               "position": position})
                attractive = 1.0 if doc == relevant[query] else 0.1
                if rng.random() < examination[position] and rng.random() < attractive:
                    events.append({**common, "type": "click", "doc_id": doc,
                                   "position": position})
    return events, relevant


def _labels(events, holdout=150, correction="ipw"):
    found, counts = sessions.sessions_from_events(events)
    return labels.build(sessions.clean(found, counts=counts), holdout, correction)


def test_the_examination_curve_is_recovered_from_a_log_with_an_exploration_slice():
    events, _ = _synthetic_log()
    found, counts = sessions.sessions_from_events(events)
    curve = fit(((s.query, s.shown[p]), p, p in s.clicked) for s in found for p in s.shown)
    truth = [t / TRUTH[0] for t in TRUTH]
    assert curve.identified and curve.impressions == 40_000
    ratios = [got / want for got, want in zip(curve.by_position, truth, strict=True)]
    # Position 1 is the unit; the top half within 25 %, every position within a factor 2
    # (the fit overstates the deepest positions by about a third: see propensity.py).
    assert curve.by_position[0] == 1.0
    assert all(0.8 < r < 1.25 for r in ratios[:5]), ratios
    assert all(0.7 < r < 2.1 for r in ratios), ratios
    assert curve.by_position[-1] < 0.2 < curve.by_position[2]
    # No position bias at all: every position comes out alike.
    flat, _ = _synthetic_log(examination=(0.4,) * 10, seed=5)
    found, _ = sessions.sessions_from_events(flat)
    even = fit(((s.query, s.shown[p]), p, p in s.clicked) for s in found for p in s.shown)
    assert all(p > 0.75 for p in even.by_position), even.by_position


def test_without_exploration_the_bias_is_not_identified():
    events, _ = _synthetic_log(queries=100, explore=0.0)
    built = _labels(events)
    assert built.propensities.identified is False
    assert built.propensities.evidence == 0
    assert built.report()["propensities"]["identified"] is False
    # Unmeasured bias is not corrected: the clicks are read as they are.
    naive = _labels(events, correction="none")
    assert built.applied == "none" and built.report()["applied"] == "none"
    assert {k: q.gains for k, q in built.train.items()} == \
        {k: q.gains for k, q in naive.train.items()}


def test_clicks_are_weighted_by_the_inverse_of_their_positions_examination():
    events, relevant = _synthetic_log()
    corrected, naive = _labels(events), _labels(events, correction="none")
    assert len(corrected.held_out) == 80  # a fifth of 400, the ones first seen last
    assert min(q.first_seen for q in corrected.held_out.values()) >= \
        max(q.first_seen for q in corrected.train.values())
    # The relevant result gets the highest estimate wherever it was ranked (position 8
    # here: clicked ~1 time in 10, yet worth the most), where the plain click rate puts
    # the top results first.
    deep = [k for k, q in corrected.train.items() if relevant[q.text].endswith("-7")]
    assert len(deep) > 10
    wins = sum(max(corrected.train[k].gains, key=corrected.train[k].gains.get)
               == relevant[corrected.train[k].text] for k in deep if corrected.train[k].gains)
    naive_wins = sum(max(naive.train[k].gains, key=naive.train[k].gains.get)
                     == relevant[naive.train[k].text] for k in deep if naive.train[k].gains)
    assert wins > naive_wins
    assert all(0 < g <= labels.MAX_GAIN for q in corrected.train.values()
               for g in q.gains.values())


def _event(kind, trace, position, doc, user="u1", query="vpn drops", ts="2026-11-02T10:00:00Z"):
    return {"type": kind, "trace_id": trace, "position": position, "doc_id": doc,
            "user_id": user, "query": query, "ts": ts}


def test_results_seen_and_skipped_above_a_click_are_negatives():
    shown = ["a", "b", "c", "d", "c"]  # two chunks of "c": it keeps its first place
    events = [_event("impression", "t1", p, d) for p, d in enumerate(shown)]
    events += [_event("click", "t1", 2, "c"), _event("click", "t1", 4, "c")]
    # Another session of the same query clicked "a": it is no negative.
    events += [_event("impression", "t2", p, d, user="u2") for p, d in enumerate(shown)]
    events.append(_event("click", "t2", 0, "a", user="u2"))
    found, _ = sessions.sessions_from_events(events)
    first = next(s for s in found if s.trace_id == "t1")
    assert first.shown == {1: "a", 2: "b", 3: "c", 4: "d"} and first.clicked == [3]
    built = _labels(events, holdout=0)
    query = built.train["vpn drops"]
    assert query.skipped == {"b"}
    assert set(query.gains) == {"a", "c"} and query.clicks == {"a": 1, "c": 1}
    from ragrec.models.training_data import from_click_labels

    examples = from_click_labels(built).examples
    assert {(e.positive, tuple(e.negatives)) for e in examples} == {("a", ("b",)),
                                                                    ("c", ("b",))}


def test_bots_junk_repeats_and_click_storms_are_dropped_or_capped_with_a_count():
    events = []
    for n in range(600):  # one user, 600 searches in a day: a bot
        events += [_event("impression", f"bot-{n}", 0, "x", user="crawler"),
                   _event("click", f"bot-{n}", 0, "x", user="crawler")]
    events += [_event("impression", "junk", 0, "x", query=" ?! "),
               _event("click", "junk", 0, "x", query=" ?! ")]
    for n in range(5):  # one person repeating a query: three count
        events += [_event("impression", f"rep-{n}", 0, "a", user="eager",
                          query="VPN  Drops" if n else "vpn drops"),
                   _event("click", f"rep-{n}", 0, "a", user="eager")]
    storm = [_event("impression", "storm", p, f"s{p}", user="clicky") for p in range(6)]
    storm += [_event("click", "storm", p, f"s{p}", user="clicky") for p in range(6)]
    events += storm
    events.append({"type": "click", "doc_id": "a", "user_id": "u", "query": "vpn"})  # no trace
    found, counts = sessions.sessions_from_events(events)
    log = sessions.clean(found, counts=counts)
    assert log.counts["bot_users_dropped"] == 1 and log.counts["bot_sessions_dropped"] == 600
    assert log.counts["junk_query_sessions_dropped"] == 1
    assert log.counts["repeat_sessions_capped"] == 2
    assert log.counts["clicks_capped"] == 3
    assert log.counts["clicks_unplaced"] == 1
    assert log.counts["sessions_kept"] == 4 and log.counts["queries"] == 1
    assert log.texts == {"vpn drops": "VPN  Drops"}  # written as most sessions wrote it
    storm_session = next(s for s in log.sessions if s.trace_id == "storm")
    assert storm_session.clicked == [1, 2, 3]  # the first three clicks (positions from 1)


def test_the_counterfactual_ndcg_prefers_the_ranking_that_puts_clicked_documents_first():
    qrels = {"q1": {"a": 1.0, "b": 0.2}, "q2": {"c": 0.5}}
    good = {"q1": ["a.md", "b.md", "x.md"], "q2": ["c.md", "y.md"]}
    bad = {"q1": ["x.md", "b.md", "a.md"], "q2": [f"y{n}.md" for n in range(10)] + ["c.md"]}
    best, worst = counterfactual.per_query(good, qrels), counterfactual.per_query(bad, qrels)
    assert best == {"q1": pytest.approx(1.0), "q2": pytest.approx(1.0)}
    assert worst["q2"] == 0.0 and 0 < worst["q1"] < 0.6
    summary = counterfactual.summary(worst)
    assert summary["queries"] == 2 and summary["ci95"][0] <= summary["ndcg@10"]
    gain = counterfactual.compare(worst, best)
    assert gain["gain"] < 0 and gain["queries"] == 2


def test_the_exploration_rate_is_bounded():
    with pytest.raises(exploration.ExploreRateError, match="RAGREC_EXPLORE"):
        exploration.Explorer(0.5)
    explorer = exploration.Explorer(0.2, random.Random(1))
    draws = [explorer.draw(10) for _ in range(2000)]
    swaps = [d for d in draws if d is not None]
    assert 320 < len(swaps) < 480  # 20 % of 2,000 (+-4 standard deviations)
    assert all(1 <= d.upper < d.lower <= 10 for d in swaps)
    assert {d.upper for d in swaps} == set(range(1, 10))
    assert explorer.draw(1) is None and exploration.Explorer(0.0).draw(10) is None
    assert exploration.apply(["a", "b", "c"], exploration.Swap(1, 3)) == ["c", "b", "a"]


def test_the_label_free_gate_refuses_only_what_both_rankings_call_worse():
    live = {"served": {"q1": 0.9, "q2": 0.8, "q3": 0.7}, "dense": {"q1": 0.6, "q2": 0.5,
                                                                   "q3": 0.4}}
    # Worse only under the served spec, which favours the version that logged the traffic.
    reordered = {"served": {"q1": 0.8, "q2": 0.7, "q3": 0.6},
                 "dense": {"q1": 0.6, "q2": 0.55, "q3": 0.4}}
    decided = counterfactual.verdict(reordered, live, margin=0.02)
    assert decided["passed"] is True and decided["worse_in"] == ["served"]
    assert decided["gains"]["served"]["gain"] == pytest.approx(-0.1)
    broken = {"served": {"q1": 0.5, "q2": 0.4, "q3": 0.3},
              "dense": {"q1": 0.2, "q2": 0.1, "q3": 0.1}}
    refused = counterfactual.verdict(broken, live, margin=0.02)
    assert refused["passed"] is False and refused["worse_in"] == ["served", "dense"]
    # Within the margin is no drop.
    close = {m: {q: v - 0.01 for q, v in scores.items()} for m, scores in live.items()}
    assert counterfactual.verdict(close, live, margin=0.02)["passed"] is True
