"""The recommendation side of the index (``airec_sync``): one item per document, with a
document vector (normalised mean of its chunk vectors), written as a feature table into
Elasticsearch (``<alias>-rec-items``, the embedded default) and, when AIRec is configured,
pushed to its item table through the official SDK.

The feature table is also the sync state: each row keeps the content hash last pushed to
AIRec, so a re-run pushes only new and changed items (``cmd: add``) and deletes items whose
document is gone (``cmd: delete``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from elasticsearch import Elasticsearch, helpers

from ragrec.es_client import create_index_once
from ragrec.indexing import versions
from ragrec.indexing.bulk_writer import run_bulk
from ragrec.indexing.chunk_document import CATALOGUE, document_vector
from ragrec.indexing.mapping import index_settings

EXCERPT_CHARS = 1000


@dataclass
class Item:
    item_id: str
    title: str
    excerpt: str
    vector: np.ndarray
    chunks: int
    last_modified: str
    model_version: str
    content_sha: str


def feature_table(alias: str) -> str:
    return f"{alias}-rec-items"


def item_id(doc_id: str) -> str:
    """AIRec ids are short strings: a stable hash of the document id."""
    return hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:32]


def collect_items(client: Elasticsearch, alias: str) -> Iterator[tuple[str, Item]]:
    """(doc_id, Item) for every document behind ``alias`` (chunks scanned in doc order)."""
    model_version = versions.index_meta(client, alias).get("model_version", "")
    fields = CATALOGUE
    current, parts = None, []
    for hit in helpers.scan(client, index=alias, _source=fields, size=500, preserve_order=True,
                            query={"query": {"match_all": {}},
                                   "sort": [{"doc_id": "asc"}, {"chunk_no": "asc"}]}):
        source = hit["_source"]
        if current is not None and source["doc_id"] != current:
            yield current, _item(current, parts, model_version)
            parts = []
        current = source["doc_id"]
        parts.append(source)
    if current is not None:
        yield current, _item(current, parts, model_version)


def _item(doc_id: str, chunks: list[dict], model_version: str) -> Item:
    digest = hashlib.sha256("".join(c["content_hash"] for c in chunks).encode()).hexdigest()
    title = next((c["title"] for c in chunks if c.get("title")), "") or doc_id
    return Item(item_id(doc_id), title[:200], chunks[0]["text"][:EXCERPT_CHARS],
                document_vector([c["vector"] for c in chunks]), len(chunks),
                max(c.get("last_modified") or "" for c in chunks), model_version, digest)


def ensure_feature_table(client: Elasticsearch, alias: str, dims: int) -> str:
    name = feature_table(alias)
    create_index_once(client, name, mappings={"dynamic": "strict", "properties": {
        "doc_id": {"type": "keyword"}, "item_id": {"type": "keyword"},
        "title": {"type": "text"}, "excerpt": {"type": "text", "index": False},
        "vector": {"type": "dense_vector", "dims": dims, "index": True,
                   "similarity": "cosine"},
        "chunks": {"type": "integer"}, "last_modified": {"type": "date"},
        "model_version": {"type": "keyword"}, "content_sha": {"type": "keyword"},
        "updated_at": {"type": "date"}, "airec_sha": {"type": "keyword"},
        **learned_fields(dims),
    }}, settings=index_settings())
    return name


NEIGHBOUR_FIELDS = {"neighbours": {"type": "object", "enabled": False},
                    "neighbours_model": {"type": "keyword"},
                    "neighbours_at": {"type": "date"},
                    "consumers": {"type": "integer"}}  # users who consumed the item
LEARNED = [*NEIGHBOUR_FIELDS, "rec_vector"]


def learned_fields(dims: int) -> dict:
    """What ``ragrec.recs.training`` learns from behaviour and stores on each row: the
    collaborative neighbours, and ``rec_vector``, the recommendation tower's image of the
    row's vector (``ragrec.recs.tower``)."""
    return {**NEIGHBOUR_FIELDS, "rec_vector": {"type": "dense_vector", "dims": dims,
                                               "index": True, "similarity": "cosine"}}


def ensure_neighbour_fields(client: Elasticsearch, alias: str, dims: int) -> None:
    """The learned fields, added to a table created before them."""
    client.indices.put_mapping(index=feature_table(alias), properties=learned_fields(dims))


def sync_feature_table(client: Elasticsearch, alias: str) -> dict:
    """Rewrites changed rows and deletes rows of vanished documents; returns what changed
    and the rows AIRec still has to receive."""
    meta = versions.index_meta(client, alias)
    table = ensure_feature_table(client, alias, int(meta["dims"]))
    existing = {h["_id"]: h["_source"] for h in helpers.scan(
        client, index=table, _source=["content_sha", "model_version", "airec_sha",
                                      *LEARNED],
        query={"query": {"match_all": {}}})}
    now = datetime.now(UTC).isoformat()
    actions, seen, changed = [], set(), 0
    for doc_id, item in collect_items(client, alias):
        seen.add(item.item_id)
        old = existing.get(item.item_id, {})
        if old.get("content_sha") == item.content_sha and \
                old.get("model_version") == item.model_version:
            continue
        changed += 1
        actions.append({"_op_type": "index", "_index": table, "_id": item.item_id, "_source": {
            "doc_id": doc_id, "item_id": item.item_id, "title": item.title,
            "excerpt": item.excerpt, "vector": item.vector, "chunks": item.chunks,
            "last_modified": item.last_modified or None, "model_version": item.model_version,
            "content_sha": item.content_sha, "updated_at": now,
            "airec_sha": old.get("airec_sha"),
            # learned from behaviour, not from the content: kept until the next retrain
            **{k: old[k] for k in LEARNED if k in old}}})
    gone = sorted(set(existing) - seen)
    actions += [{"_op_type": "delete", "_index": table, "_id": i} for i in gone]
    if actions:
        outcome = run_bulk(client, actions)
        if outcome.failed:
            raise RuntimeError(f"feature table write failed: {next(iter(outcome.failed.values()))}")
    client.indices.refresh(index=table)
    return {"table": table, "items": len(seen), "changed": changed, "deleted": len(gone),
            "deleted_ids": gone}


def pending_for_airec(client: Elasticsearch, alias: str) -> list[dict]:
    """Rows whose content AIRec has not received yet."""
    table = feature_table(alias)
    rows = []
    for hit in helpers.scan(client, index=table, query={"query": {"match_all": {}}},
                            _source=["doc_id", "item_id", "title", "excerpt", "last_modified",
                                     "content_sha", "airec_sha", "model_version"]):
        if hit["_source"].get("airec_sha") != hit["_source"]["content_sha"]:
            rows.append(hit["_source"])
    return rows


def mark_pushed(client: Elasticsearch, alias: str, rows: list[dict]) -> None:
    actions = [{"_op_type": "update", "_index": feature_table(alias), "_id": r["item_id"],
                "doc": {"airec_sha": r["content_sha"]}} for r in rows]
    if actions:
        outcome = run_bulk(client, actions)
        if outcome.failed:
            raise RuntimeError(f"could not record the AIRec push: {outcome.failed}")


# Behaviours: the events AIRec has not received, by when the API stored them (``logged_at``),
# up to a minute ago (a write still in flight is never skipped); the point reached is kept
# in the events index's ``_meta``. Events from before ``logged_at`` existed go with the
# first push.
SETTLED_SECONDS = 60
_PUSHED_UNTIL = "airec_behaviours_until"


def behaviours_pushed_until(client: Elasticsearch, alias: str) -> str | None:
    from ragrec.recs.events import events_meta

    return events_meta(client, alias).get(_PUSHED_UNTIL)


def pending_behaviours(client: Elasticsearch, alias: str,
                       now: datetime | None = None) -> list[dict]:
    """Stored events not yet pushed, oldest ``logged_at`` first."""
    from datetime import timedelta

    from ragrec.recs.events import events_index

    index = events_index(alias)
    if not client.indices.exists(index=index):
        return []
    cutoff = ((now or datetime.now(UTC)) - timedelta(seconds=SETTLED_SECONDS)).isoformat()
    since = behaviours_pushed_until(client, alias)
    logged = {"range": {"logged_at": {"lte": cutoff, **({"gt": since} if since else {})}}}
    query = logged if since else {"bool": {"should": [
        logged, {"bool": {"must_not": {"exists": {"field": "logged_at"}}}}]}}
    client.indices.refresh(index=index)
    return [h["_source"] for h in helpers.scan(
        client, index=index, preserve_order=True, query={
            "query": query, "sort": [{"logged_at": {"order": "asc", "missing": "_first"}}]})]


def mark_behaviours_pushed(client: Elasticsearch, alias: str, until: str) -> None:
    from ragrec.recs.events import update_events_meta

    update_events_meta(client, alias, **{_PUSHED_UNTIL: until})


def neighbour_lists(client: Elasticsearch, alias: str,
                    doc_ids: list[str]) -> dict[str, list[tuple[str, float]]]:
    """doc_id -> its stored neighbours (absent: never learned, or no such item)."""
    table = feature_table(alias)
    if not doc_ids or not client.indices.exists(index=table):
        return {}
    response = client.mget(index=table, ids=[item_id(d) for d in doc_ids],
                           source=["doc_id", "neighbours"])
    lists = {}
    for doc in response["docs"]:
        source = doc.get("_source") if doc.get("found") else None
        if source and "neighbours" in source:
            lists[source["doc_id"]] = [(n["doc_id"], float(n["weight"]))
                                       for n in source["neighbours"]]
    return lists
