"""The search spec and the pure ranking steps: what a spec accepts, that specs which rank
alike are equal, how a caller's choices override a served spec, and the first stage by hand."""

from __future__ import annotations

import pytest

from ragrec.retrieval import Hit, SearchSpec, SpecError
from ragrec.retrieval.searcher import first_stage


def test_fields_that_do_not_apply_are_reset_so_equal_rankings_are_equal_specs():
    assert SearchSpec("bm25", "convex", 0.9) == SearchSpec("bm25")
    assert SearchSpec("hybrid", "rrf", dense_weight=0.8) == SearchSpec("hybrid")
    assert SearchSpec(rerank_top=0, rerank_weight=0.2) == SearchSpec()
    assert SearchSpec(rerank_top=20, rerank_weight=0.0) == SearchSpec()  # first stage's order
    assert SearchSpec("hybrid", "convex", 0.8) != SearchSpec("hybrid", "convex", 0.3)
    assert SearchSpec("hybrid", "convex", 0.4, rerank_top=20).label == "hybrid-convex+rerank"


@pytest.mark.parametrize("fields,words", [
    ({"mode": "semantic"}, "mode must be one of"),
    ({"fusion": "max"}, "fusion must be one of"),
    ({"dense_weight": 1.5, "fusion": "convex"}, "dense_weight must be a number in [0, 1]"),
    ({"rerank_weight": True, "rerank_top": 5}, "rerank_weight must be a number"),
    ({"depth": 0}, "depth must be a whole number"),
    ({"depth": 2.5}, "depth must be a whole number"),
    ({"depth": 10, "rerank_top": 11}, "cannot exceed depth"),
])
def test_a_spec_that_cannot_rank_says_why(fields, words):
    with pytest.raises(SpecError, match=None) as error:
        SearchSpec(**fields)
    assert words in str(error.value)


def test_recorded_specs_round_trip_and_unknown_fields_are_refused():
    spec = SearchSpec("hybrid", "convex", 0.4, depth=200, rerank_top=50, rerank_weight=0.2)
    assert SearchSpec.from_dict(spec.to_dict()) == spec
    assert SearchSpec.recorded({}) == SearchSpec()
    assert SearchSpec.recorded({"search_spec": spec.to_dict()}) == spec
    with pytest.raises(SpecError, match="unknown search spec fields"):
        SearchSpec.from_dict({"mode": "dense", "k": 5})


def test_a_callers_choices_override_only_what_they_name():
    served = SearchSpec("hybrid", "convex", 0.6, depth=30, rerank_top=3, rerank_weight=0.8)
    assert served.overridden() == served
    assert served.overridden(rerank=False) == SearchSpec("hybrid", "convex", 0.6, depth=30)
    assert served.overridden(mode="bm25") == SearchSpec("bm25", depth=30, rerank_top=3,
                                                        rerank_weight=0.8)
    plain = SearchSpec()
    assert plain.overridden(rerank=True) == SearchSpec(rerank_top=50)  # default head of 50
    assert plain.overridden(rerank=True, rerank_top=150).depth == 150  # depth grows to it
    with pytest.raises(SpecError):
        plain.overridden(rerank=True, rerank_top=150, depth=100)  # unless the caller set it


def _leg(name, scored):
    return [Hit(id=i, doc_id=i.split("#")[0], chunk_no=0, text=i, score=s,
                scores={name: s}, ranks={name: r}) for r, (i, s) in enumerate(scored, 1)]


def test_first_stage_by_hand():
    legs = {"bm25": _leg("bm25", [("a#0", 9.0), ("b#0", 5.0), ("c#0", 1.0)]),
            "dense": _leg("dense", [("b#0", 0.9), ("d#0", 0.8), ("a#0", 0.1)])}
    rrf = first_stage(legs, SearchSpec("hybrid"))
    assert [h.id for h in rrf] == ["b#0", "a#0", "d#0", "c#0"]
    assert rrf[0].scores == {"bm25": 5.0, "dense": 0.9} and rrf[0].ranks == {"bm25": 2,
                                                                            "dense": 1}
    convex = first_stage(legs, SearchSpec("hybrid", "convex", 0.5))
    assert [h.id for h in convex][:2] == ["b#0", "a#0"]  # 0.5*1 + 0.5*0.5 beats 0.5*1
    assert [h.id for h in first_stage(legs, SearchSpec("dense"))] == ["b#0", "d#0", "a#0"]
    # Ranking the same legs under another spec leaves the first ranking alone.
    assert rrf[0].score == pytest.approx(1 / 62 + 1 / 61)
    tie = first_stage({"bm25": _leg("bm25", [("z#0", 1.0), ("y#0", 1.0)])}, SearchSpec("bm25"))
    assert [h.id for h in tie] == ["y#0", "z#0"]  # equal scores: by chunk id
