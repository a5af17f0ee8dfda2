"""Collaborative candidates from logged events, on the real node: ``ragrec.recs.training``
learns neighbours from ``<alias>-events`` into the feature table, serving reads them back,
a content re-sync keeps them, and a retrain replaces them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from ragrec.recs import blend, cold_start, item_table, training
from ragrec.recs.events import log_events
from ragrec.recs.item_table import feature_table, item_id, sync_feature_table
from ragrec.sources import open_source
from ragrec.sources.samples import samples_dir

VPN, TRAVEL, LEAVE, ONBOARDING = ("vpn-access.md", "travel-expenses.md", "parental-leave.md",
                                  "onboarding.md")


def _clicks(pairs: list[tuple[str, str]], start: datetime) -> list[dict]:
    return [{"user_id": user, "doc_id": doc, "type": "click", "ts": start + timedelta(minutes=n)}
            for n, (user, doc) in enumerate(pairs)]


def test_neighbours_are_learned_from_clicks_served_and_kept_until_a_retrain(
        es, make_ingestor, index_name, cleanup_alias):
    cleanup_alias(index_name)
    make_ingestor().ingest(open_source(str(samples_dir())), index_name)
    from ragrec.recs import recommend

    with pytest.raises(training.NoEvents, match="nothing to learn"):
        training.learn(es, index_name)
    content_only = recommend.similar_items(es, index_name, VPN, k=3)
    assert all(item.get("also_read") is None for item in content_only)
    assert content_only[0]["doc_id"] != TRAVEL  # by content alone, another page is closer
    start = datetime(2026, 11, 1, tzinfo=UTC)
    # Travellers read VPN access then travel expenses; new parents read leave then onboarding.
    pairs = [(f"traveller-{n}", doc) for n in range(4) for doc in (VPN, TRAVEL)]
    pairs += [(f"parent-{n}", doc) for n in range(3) for doc in (LEAVE, ONBOARDING)]
    # an impression is not consumption
    log_events(es, index_name, _clicks(pairs, start) + [
        {"user_id": "parent-0", "doc_id": VPN, "type": "impression", "ts": start}])
    report = training.learn(es, index_name)
    assert report["method"] == "ease" and report["users"] == 7
    assert report["items"] == 6 and report["consumed_items"] == 4

    lists = item_table.neighbour_lists(es, index_name, [VPN, LEAVE, "search-platform.md"])
    assert lists[VPN][0][0] == TRAVEL and lists[LEAVE][0][0] == ONBOARDING
    assert lists["search-platform.md"] == []  # nobody read it: no collaborative neighbours
    scores = blend.collaborative_scores(es, index_name, {VPN: 1.0})
    assert max(scores, key=scores.get) == TRAVEL and VPN not in scores
    # "People who read this also read", blended with content, one entry per document.
    related = recommend.similar_items(es, index_name, VPN, k=4)
    ids = [item["doc_id"] for item in related]
    assert ids[0] == TRAVEL and related[0]["also_read"] == 1.0
    assert len(set(ids)) == 4 and VPN not in ids
    unread = recommend.similar_items(es, index_name, "search-platform.md", k=3)
    assert all(item.get("also_read") is None for item in unread)  # content neighbours only

    # A content re-sync rewrites a changed row whole, but keeps its learned list.
    table = feature_table(index_name)
    es.update(index=table, id=item_id(VPN), doc={"content_sha": "edited"}, refresh=True)
    assert sync_feature_table(es, index_name)["changed"] == 1
    assert item_table.neighbour_lists(es, index_name, [VPN])[VPN][0][0] == TRAVEL

    # Behaviour changes: travellers now read onboarding after VPN; a retrain follows it.
    later = start + timedelta(days=1)
    log_events(es, index_name, _clicks(
        [(f"new-hire-{n}", doc) for n in range(8) for doc in (VPN, ONBOARDING)], later))
    training.learn(es, index_name)
    assert item_table.neighbour_lists(es, index_name, [VPN])[VPN][0][0] == ONBOARDING


def test_recommendations_use_the_learned_neighbours_and_fall_back_to_content(
        es, make_ingestor, index_name, cleanup_alias):
    from ragrec.recs import recommend

    cleanup_alias(index_name)
    make_ingestor().ingest(open_source(str(samples_dir())), index_name)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    # Everyone who read the leave policy went on to the VPN page: nothing in their content
    # says so, only behaviour does.
    pairs = [(f"parent-{n}", doc) for n in range(5) for doc in (LEAVE, VPN)]
    # The onboarding page is the most read, alone.
    pairs += [(f"new-hire-{n}", ONBOARDING) for n in range(8)]
    log_events(es, index_name, _clicks(pairs + [("fan", LEAVE)], start))
    version = "all-minilm-l6-v2-base"
    before = recommend.for_user(es, index_name, "fan", None, version, k=3)
    assert before["strategy"] == "interests" and before["items"][0]["doc_id"] != VPN
    training.learn(es, index_name)
    after = recommend.for_user(es, index_name, "fan", None, version, k=3)
    assert after["strategy"] == "collaborative"
    ranked = [item["doc_id"] for item in after["items"]]
    assert ranked[0] == VPN and LEAVE not in ranked
    # Documents no one has read still come through their content.
    assert len(ranked) == 3 and set(ranked) - {VPN}
    rows = {h["_source"]["doc_id"]: h["_source"] for h in es.search(
        index=feature_table(index_name), size=20, source=["doc_id", "consumers"],
        query={"match_all": {}})["hits"]["hits"]}
    assert {d: rows[d]["consumers"] for d in (VPN, LEAVE, ONBOARDING)} == {
        VPN: 5, LEAVE: 6, ONBOARDING: 8}


def test_a_new_document_nobody_has_read_gets_the_cold_place(
        es, make_ingestor, index_name, cleanup_alias, tmp_path):
    import shutil

    from ragrec.recs import recommend

    cleanup_alias(index_name)
    folder = tmp_path / "docs"
    shutil.copytree(samples_dir(), folder)
    make_ingestor().ingest(open_source(str(folder)), index_name)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    pairs = [(f"parent-{n}", doc) for n in range(5) for doc in (LEAVE, VPN)]
    pairs += [(f"new-hire-{n}", doc) for n in range(8) for doc in (ONBOARDING, TRAVEL)]
    log_events(es, index_name, _clicks(pairs + [("fan", LEAVE)], start))
    training.learn(es, index_name)
    # A page published after the model was learned: no one has read it yet.
    (folder / "childcare.md").write_text(
        "# Childcare support for new parents\n\nParents on parental leave and returning "
        "from it can use the childcare subsidy; leave and childcare requests go to HR.\n")
    make_ingestor().ingest(open_source(str(folder)), index_name)
    version = "all-minilm-l6-v2-base"
    # Until rec_train runs again (the index Asset triggers it) the page has no rec_vector.
    def cold(seen):
        return [d for d, _ in cold_start.cold_candidates(es, index_name, {LEAVE: 1.0}, seen,
                                                       0, 0.0, 10)]
    assert "childcare.md" not in cold({LEAVE})
    report = training.learn(es, index_name)
    assert report["tower"] == {"pairs": report["tower"]["pairs"], "trained": False}  # too few
    # Only documents nobody consumed, the closest first, never what the user has seen.
    assert cold({LEAVE})[0] == "childcare.md"
    assert not {LEAVE, VPN, ONBOARDING, TRAVEL} & set(cold({LEAVE}))
    assert "childcare.md" not in cold({LEAVE, "childcare.md"})
    served = recommend.for_user(es, index_name, "fan", None, version, k=2)
    assert [i["doc_id"] for i in served["items"]] == [VPN, "childcare.md"]
    without = recommend.for_user(es, index_name, "fan", None, version, k=2,
                                 settings=recommend.RecSettings(cold_slots=0))
    assert [i["doc_id"] for i in without["items"]][0] == VPN
    # Without a trained tower, rec_vector is the content vector itself.
    row = es.get(index=feature_table(index_name), id=item_id("childcare.md"))["_source"]
    assert row["consumers"] == 0
    assert np.allclose(row["rec_vector"], row["vector"], atol=1e-6)
