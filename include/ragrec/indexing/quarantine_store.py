"""Quarantine records in Elasticsearch, next to the index they belong to.

One record per document (``_id`` from the doc id), with the source fingerprint, so an
unchanged bad file is not parsed again on every run, and a fixed file leaves quarantine.
"""

from __future__ import annotations

from datetime import UTC, datetime

from elasticsearch import Elasticsearch, helpers

from ragrec.es_client import create_index_once
from ragrec.indexing.mapping import quarantine_body
from ragrec.records import Quarantined, doc_hash

# Failures of these stages depend only on the file, so they are skipped while it is
# unchanged; embedding/indexing failures (an outage) are retried on the next run, and so is
# a read that failed (a network fault, a permission since fixed, a link since repaired), and
# a parser whose module is missing from the environment (installed since).
STICKY_STAGES = frozenset({"read", "parse", "chunk"})
RETRIED_REASONS = frozenset({"unreadable", "parser_unavailable"})


def is_sticky(stage: str, reason: str) -> bool:
    """Whether a quarantine record stands until the file changes."""
    return stage in STICKY_STAGES and reason not in RETRIED_REASONS


def quarantine_index(alias: str) -> str:
    return f"{alias}--quarantine"


def ensure_quarantine_index(client: Elasticsearch, alias: str) -> str:
    name = quarantine_index(alias)
    create_index_once(client, name, **quarantine_body())
    return name


def read_quarantine(client: Elasticsearch, alias: str) -> dict[str, dict]:
    name = quarantine_index(alias)
    if not client.indices.exists(index=name):
        return {}
    return {
        hit["_source"]["doc_id"]: hit["_source"]
        for hit in helpers.scan(client, index=name, query={"query": {"match_all": {}}})
    }


def quarantine_actions(alias: str, records: list[Quarantined]) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "_index": quarantine_index(alias),
            "_id": doc_hash(r.doc_id),
            "_source": {
                "doc_id": r.doc_id, "source_uri": r.source_uri, "fingerprint": r.fingerprint,
                "stage": r.stage, "reason": r.reason, "detail": r.detail,
                "quarantined_at": now,
            },
        }
        for r in records
    ]


def release_actions(alias: str, doc_ids: list[str]) -> list[dict]:
    return [
        {"_op_type": "delete", "_index": quarantine_index(alias), "_id": doc_hash(d)}
        for d in doc_ids
    ]
