"""The real Elasticsearch node: version, BM25 ranking, kNN on dense_vector, English analysis."""

from __future__ import annotations

import math
from dataclasses import replace

import elasticsearch
import pytest
from elasticsearch import helpers

from ragrec.config import LocalNodeSettings
from ragrec.dev.es_node import LocalNode, NodeError


def test_server_is_elasticsearch_8_and_matches_client_major(es):
    server = es.info()["version"]["number"]
    assert server.startswith("8.")
    assert elasticsearch.__versionstr__.split(".")[0] == server.split(".")[0]
    assert es.ping()


def test_bm25_match_ranks_documents_by_term_evidence(es, index_name):
    es.indices.create(
        index=index_name,
        mappings={"properties": {"text": {"type": "text", "analyzer": "english"}}},
    )
    docs = {
        "both": "Hotel costs are reimbursed after the trip when receipts are submitted.",
        "one": "The hotel lobby has a coffee machine and comfortable chairs.",
        "none": "Parental leave lasts twenty weeks and is fully paid.",
    }
    helpers.bulk(
        es,
        ({"_index": index_name, "_id": k, "text": v} for k, v in docs.items()),
        refresh="wait_for",
    )
    hits = es.search(index=index_name, query={"match": {"text": "reimbursing hotels"}})["hits"]
    ranked = [hit["_id"] for hit in hits["hits"]]
    # Stemming ("reimbursing" ~ "reimbursed", "hotels" ~ "hotel") and BM25's term weighting.
    assert ranked == ["both", "one"]
    assert hits["hits"][0]["_score"] > hits["hits"][1]["_score"]


def test_knn_on_dense_vector_returns_the_nearest_neighbour(es, index_name):
    es.indices.create(
        index=index_name,
        mappings={
            "properties": {
                "vector": {"type": "dense_vector", "dims": 4, "index": True,
                           "similarity": "cosine"}
            }
        },
    )
    vectors = {
        "east": [1.0, 0.0, 0.0, 0.0],
        "north": [0.0, 1.0, 0.0, 0.0],
        "north-east": [0.7, 0.7, 0.0, 0.0],
        "up": [0.0, 0.0, 1.0, 0.1],
    }
    helpers.bulk(
        es,
        ({"_index": index_name, "_id": k, "vector": v} for k, v in vectors.items()),
        refresh="wait_for",
    )
    query = [0.9, 0.3, 0.0, 0.0]

    def cosine(a, b):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    expected = sorted(vectors, key=lambda k: cosine(query, vectors[k]), reverse=True)
    response = es.search(
        index=index_name,
        knn={"field": "vector", "query_vector": query, "k": 2, "num_candidates": 10},
        source=False,
    )
    assert [hit["_id"] for hit in response["hits"]["hits"]] == expected[:2]
    assert expected[0] == "east"


def test_english_analyzer_stems_and_drops_stop_words(es):
    tokens = es.indices.analyze(analyzer="english", text="The runners were running")["tokens"]
    assert [t["token"] for t in tokens] == ["runner", "were", "run"]


def test_local_node_refuses_a_heap_above_one_gigabyte(tmp_path):
    settings = LocalNodeSettings(home=tmp_path, heap="2g")
    with pytest.raises(NodeError, match="1g"):
        LocalNode(settings)
    with pytest.raises(NodeError, match="512m"):
        LocalNode(LocalNodeSettings(home=tmp_path, heap="lots"))


def test_starting_a_running_node_reuses_it(es_url, local_node_name):
    if local_node_name is None:
        pytest.skip("tests run against ES_URL; no local node to restart")
    settings = replace(LocalNodeSettings.from_env(), name=local_node_name)
    node = LocalNode(settings, log=lambda _m: None)
    pid_before = node.status().pid
    assert node.start() == es_url
    assert node.status().pid == pid_before


def test_indices_get_no_replica_on_one_node_and_a_layout_can_be_chosen(es, index_name):
    """The default layout (``auto_expand_replicas 0-1``) leaves a single node green;
    ``RAGREC_INDEX_REPLICAS`` / ``_SHARDS`` choose another, and a malformed one is refused."""
    from ragrec.config import IndexLayoutSettings
    from ragrec.indexing.mapping import chunk_index_body

    es.indices.create(index=index_name, **chunk_index_body(8, "m"))
    assert es.cluster.health(index=index_name, wait_for_status="green",
                             timeout="30s")["status"] == "green"
    layout = IndexLayoutSettings.from_env({"RAGREC_INDEX_SHARDS": "2",
                                           "RAGREC_INDEX_REPLICAS": "1"})
    assert chunk_index_body(8, "m", layout=layout)["settings"] == {
        "number_of_shards": 2, "number_of_replicas": 1}
    assert IndexLayoutSettings(replicas="0-all").index_settings()["auto_expand_replicas"] \
        == "0-all"
    for bad in ("one", "1-", "-1", "0-many"):
        with pytest.raises(ValueError, match="replicas"):
            IndexLayoutSettings(replicas=bad)


def test_workers_racing_to_create_one_index_all_succeed(es, index_name):
    """Mapped batches on several workers create the same quarantine index at once: one
    creates it, the others find it made; none fails."""
    from concurrent.futures import ThreadPoolExecutor

    from ragrec.es_client import create_index_once
    from ragrec.indexing.mapping import quarantine_body

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: create_index_once(es, index_name, **quarantine_body()),
                                range(8)))
    assert created.count(True) == 1
    assert es.indices.exists(index=index_name)
