"""The exploration slice of /search on the real node and model server: a share of answers
(RAGREC_EXPLORE) swaps two of the hits the ranking gave, says which in ``explore``, and the
API logs an ``explore`` event for each; a rate above the bound is refused at start."""

from __future__ import annotations

import pytest

from api.conftest import make_client
from ragrec.feedback.exploration import ExploreRateError


def test_a_share_of_answers_swaps_two_hits_and_is_logged(es, kb_alias, api_model_server):
    from ragrec.recs.events import events_index

    query = "how do I connect to the VPN from a hotel"
    with make_client(es, kb_alias, api_model_server) as plain:
        ranked = [h["id"] for h in plain.post("/search", json={"query": query, "k": 6})
                  .json()["hits"]]
    assert len(ranked) == 6
    with make_client(es, kb_alias, api_model_server, explore=0.2) as api:
        answers = [api.post("/search", json={"query": query, "k": 6, "highlight": False})
                   .json() for _ in range(120)]
    explored = [a for a in answers if "explore" in a]
    assert 6 <= len(explored) <= 45  # 20 % of 120, +-4 standard deviations
    for answer in answers:
        shown = [h["id"] for h in answer["hits"]]
        if "explore" not in answer:
            assert shown == ranked
            continue
        upper, lower = answer["explore"]["swapped"]
        assert 1 <= upper < lower <= 6
        expected = list(ranked)
        expected[upper - 1], expected[lower - 1] = expected[lower - 1], expected[upper - 1]
        assert shown == expected
    es.indices.refresh(index=events_index(kb_alias))
    logged = es.search(index=events_index(kb_alias), size=200,
                       query={"term": {"type": "explore"}})["hits"]["hits"]
    by_trace = {h["_source"]["trace_id"]: h["_source"] for h in logged}
    for answer in explored:
        event = by_trace[answer["trace_id"]]
        upper, lower = answer["explore"]["swapped"]
        assert (event["position"], event["swapped_with"]) == (upper - 1, lower - 1)
        assert event["query"] == query and event["surface"] == "search"
        assert event["doc_id"] == answer["hits"][lower - 1]["doc_id"]  # the hit moved down


def test_an_exploration_rate_above_the_bound_is_refused(es, kb_alias):
    with pytest.raises(ExploreRateError, match="RAGREC_EXPLORE must be between 0 and 0.2"):
        make_client(es, kb_alias, explore=0.3)
