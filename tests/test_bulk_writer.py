"""Bulk writes on the real node: an item Elasticsearch refuses for a reason of its own (a
shard without a primary: 503) is sent again until the cluster takes it, and fails the write
as a transport error - never as a bad document - when it never does; a bad document is
reported against its id."""

from __future__ import annotations

import threading

import pytest

from ragrec.indexing.bulk_writer import BulkUnavailable, run_bulk


def _unallocated_index(es, name: str) -> None:
    """An index whose only shard may live on no node there is: red until allowed."""
    es.indices.create(index=name, settings={
        "number_of_shards": 1, "number_of_replicas": 0,
        "index.routing.allocation.require._name": "no-such-node"},
        mappings={"properties": {"n": {"type": "integer"}}}, wait_for_active_shards="0")


def _allow(es, name: str) -> None:
    es.indices.put_settings(index=name,
                            settings={"index.routing.allocation.require._name": None})


def _actions(name: str, count: int) -> list[dict]:
    return [{"_index": name, "_id": f"d{i}", "_source": {"n": i}} for i in range(count)]


def test_items_refused_while_a_primary_is_missing_are_sent_again(es, index_name):
    _unallocated_index(es, index_name)
    # The primary appears while the first round is being refused.
    timer = threading.Timer(1.5, _allow, (es, index_name))
    timer.start()
    outcome = run_bulk(es, _actions(index_name, 20), first_pause=0.5, shard_wait="1s")
    timer.join()
    assert outcome.failed == {}
    assert outcome.succeeded == 20 and outcome.retried >= 20
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == 20


def test_a_cluster_that_never_takes_the_items_fails_the_write(es, index_name):
    _unallocated_index(es, index_name)
    with pytest.raises(BulkUnavailable, match="unavailable_shards_exception"):
        run_bulk(es, _actions(index_name, 3), rounds=1, first_pause=0.1, shard_wait="500ms")


def test_a_bad_document_is_reported_and_the_rest_written(es, index_name):
    es.indices.create(index=index_name, mappings={"dynamic": "strict",
                                                  "properties": {"n": {"type": "integer"}}})
    actions = _actions(index_name, 3) + [{"_index": index_name, "_id": "bad",
                                          "_source": {"n": "not a number"}}]
    outcome = run_bulk(es, actions)
    assert outcome.succeeded == 3 and outcome.retried == 0
    assert list(outcome.failed) == ["bad"]
    assert "document_parsing_exception" in outcome.failed["bad"]
