"""A write-then-read probe that proves a client reaches Elasticsearch with working indexing."""

from __future__ import annotations

from datetime import UTC, datetime

from elasticsearch import Elasticsearch


def write_probe(client: Elasticsearch, index: str, probe_id: str) -> str:
    """Upsert one probe document (idempotent on ``probe_id``) and make it searchable."""
    client.index(
        index=index,
        id=probe_id,
        document={"probe_id": probe_id, "written_at": datetime.now(UTC).isoformat()},
        refresh="wait_for",
    )
    return probe_id


def read_probe(client: Elasticsearch, index: str, probe_id: str) -> dict:
    """Find the probe through search (not a get), so the search path is exercised too."""
    hits = client.search(index=index, query={"term": {"probe_id.keyword": probe_id}})["hits"]
    if hits["total"]["value"] != 1:
        raise LookupError(f"probe {probe_id!r} found {hits['total']['value']} times in {index!r}")
    return hits["hits"][0]["_source"]
