"""The streaming plan: a sorted merge of listing and index state, external sorting of an
unordered listing, spools, and key ranges for mapped batches (no services needed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from ragrec.indexing.doc_state import DocState
from ragrec.indexing.sync_plan import PlanOrderError, key_ranges, merge_plan
from ragrec.records import SourceObject
from ragrec.sources.base import SourceError
from ragrec.sources.ordering import Spool, checked_order, sorted_externally

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def obj(key: str, fingerprint: str = "f1") -> SourceObject:
    return SourceObject(uri=f"mem://{key}", key=key, size=1, fingerprint=fingerprint,
                        last_modified=WHEN)


def state(key: str, fingerprint: str = "f1", complete: bool = True) -> DocState:
    return DocState(key, frozenset({fingerprint}), 2 if complete else 1, 2, 1)


def actions(steps) -> dict[str, str]:
    return {s.doc_id: s.action for s in steps}


def test_merge_classifies_every_document_once_in_key_order():
    listing = [obj("a"), obj("b", "f2"), obj("c"), obj("e"), obj("q1"), obj("q2", "new")]
    states = [state("a"), state("b"), state("c", complete=False), state("d")]
    quarantine = {k: {"doc_id": k, "fingerprint": "f1", "stage": "parse",
                      "reason": "encrypted"} for k in ("q1", "q2", "gone")}
    steps = list(merge_plan(listing, states, quarantine))
    assert [s.doc_id for s in steps] == ["a", "b", "c", "d", "e", "q1", "q2", "gone"]
    assert actions(steps) == {"a": "unchanged", "b": "changed", "c": "changed",
                              "d": "deleted", "e": "new", "q1": "quarantined",
                              "q2": "changed", "gone": "released"}
    assert next(s for s in steps if s.doc_id == "b").state == state("b")


def test_a_windowed_merge_never_deletes_and_full_redoes_everything():
    steps = list(merge_plan([obj("b")], [state("a"), state("b"), state("c")], {},
                            windowed=True))
    assert actions(steps) == {"b": "unchanged"}
    assert actions(merge_plan([obj("b")], [state("b")], {}, full=True)) == {"b": "changed"}


def test_an_index_state_out_of_order_is_refused():
    with pytest.raises(PlanOrderError, match="out of order"):
        list(merge_plan([obj("z")], [state("b"), state("a")], {}))


def test_external_sort_orders_and_deduplicates_past_one_run():
    keys = [f"k{i:05d}" for i in range(2_500)]
    shuffled = keys + keys[:300]  # a server repeating keys across pages
    random.Random(3).shuffle(shuffled)
    out = [o.key for o in sorted_externally((obj(k) for k in shuffled), run_size=400)]
    assert out == keys


def test_a_listing_that_claims_order_is_checked_as_it_streams():
    assert [o.key for o in checked_order([obj("a"), obj("a"), obj("b")], "mem://")] == ["a", "b"]
    with pytest.raises(SourceError, match="listed 'a' after 'b'"):
        list(checked_order([obj("b"), obj("a")], "mem://"))


def test_a_spool_keeps_order_past_its_memory_limit_and_iterates_twice():
    spool = Spool(limit=3)
    for i in range(10):
        spool.append((obj(str(i)), None))
    assert len(spool) == 10
    assert [o.key for o, _ in spool] == [str(i) for i in range(10)]
    assert [o.key for o, _ in spool] == [str(i) for i in range(10)]
    spool.close()


def test_key_ranges_cover_the_keys_and_stay_within_the_batch_limit():
    keys = [f"k{i:04d}" for i in range(1_000)]
    ranges = key_ranges(iter(keys), batch_size=7, max_batches=20)
    assert len(ranges) <= 20 and sum(r["documents"] for r in ranges) == 1_000
    assert ranges[0]["after"] is None and ranges[-1]["last"] == keys[-1]
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert after["after"] == before["last"]  # contiguous: no key falls between
    for r in ranges:
        inside = [k for k in keys if (r["after"] is None or k > r["after"]) and k <= r["last"]]
        assert len(inside) == r["documents"]
    small = key_ranges(keys[:10], batch_size=4, max_batches=20)
    assert [r["documents"] for r in small] == [4, 4, 2]
    assert key_ranges([], 4, 20) == []
