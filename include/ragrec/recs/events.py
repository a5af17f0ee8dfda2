"""Interaction events in Elasticsearch, ``<alias>-events``: impressions and clicks from search
and recommendations, and the chat's feedback (``up``/``down`` on an answer, one event per
cited document; ``helped`` on one cited source) - and their export as labelled training
pairs for ``ragrec train --clicks`` (the loop that makes the custom models better at what
users actually use): clicks, ``helped`` and ``up`` are positives, ``down`` negatives.

Every search, chat and recommendation response carries a ``trace_id`` (``new_trace_id``);
the impressions and clicks on what it showed carry it back, with the ``scene_id`` (the page
or slot, AIRec's scene) and the ``surface``, so a click is tied to the response that earned
it. ``logged_at`` is when the API stored an event (``ts`` is when it happened, and may be
earlier): ``airec_sync`` pushes behaviours by it."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from ragrec.es_client import create_index_once
from ragrec.feedback.sessions import events_index
from ragrec.indexing import versions
from ragrec.indexing.bulk_writer import run_bulk
from ragrec.indexing.mapping import index_settings

log = logging.getLogger(__name__)
MAX_EVENTS = 500
_MAPPINGS = {"dynamic": "strict", "properties": {
    "user_id": {"type": "keyword"}, "doc_id": {"type": "keyword"},
    "type": {"type": "keyword"}, "query": {"type": "keyword", "ignore_above": 2000},
    "surface": {"type": "keyword"}, "ts": {"type": "date"},
    "conversation_id": {"type": "keyword"}, "turn": {"type": "integer"},
    "trace_id": {"type": "keyword"}, "scene_id": {"type": "keyword"},
    "position": {"type": "integer"}, "swapped_with": {"type": "integer"},
    "logged_at": {"type": "date"}}}
POSITIVE = ("click", "helped", "up")
NEGATIVE = ("down",)


def new_trace_id() -> str:
    """A response's trace id: 32 hex digits, unique per response."""
    return uuid.uuid4().hex


def ensure_events_index(client: Elasticsearch, alias: str) -> str:
    name = events_index(alias)
    created = create_index_once(client, name, mappings=_MAPPINGS, settings=index_settings())
    if not created and name not in _CURRENT:  # an index from before the newer fields
        client.indices.put_mapping(index=name, properties=_MAPPINGS["properties"])
    _CURRENT.add(name)
    return name


_CURRENT: set[str] = set()


def normalise_events(rows: list[dict]) -> list[dict]:
    """Events as stored: every field present, ``ts`` an aware ISO time (default now, UTC when
    given without an offset). The fields, ``ts`` included, are checked by the API's request
    model (``EventIn``): only values Elasticsearch accepts get here."""
    now = datetime.now(UTC)
    events = []
    for row in rows:
        stamp = row.get("ts") or now
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        events.append({"user_id": row["user_id"], "doc_id": row["doc_id"], "type": row["type"],
                       "query": row.get("query") or None, "surface": row.get("surface") or None,
                       "ts": stamp.isoformat(),
                       "conversation_id": row.get("conversation_id") or None,
                       "turn": row.get("turn"), "trace_id": row.get("trace_id") or None,
                       "scene_id": row.get("scene_id") or None,
                       "position": row.get("position"), "logged_at": now.isoformat()})
    return events


def log_events(client: Elasticsearch, alias: str, events: list[dict]) -> int:
    index = ensure_events_index(client, alias)
    actions = [{"_op_type": "index", "_index": index, "_source": e} for e in events]
    outcome = run_bulk(client, actions)
    client.indices.refresh(index=index)
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} of {len(actions)} events were not stored: "
                           f"{next(iter(outcome.failed.values()))}")
    return outcome.succeeded


def log_exploration(client: Elasticsearch, alias: str, answer: dict) -> None:
    """An ``explore`` event for a ``/search`` answer of the exploration slice: the trace,
    the query, the two positions swapped (from 0, as impressions count them) and the hit
    moved down. Written by the API itself (clients cannot post this type); a failure to
    write it is logged and the answer still goes out."""
    upper, lower = answer["explore"]["swapped"]
    now = datetime.now(UTC).isoformat()
    event = {"user_id": "ragrec-api", "doc_id": answer["hits"][lower - 1]["doc_id"],
             "type": "explore", "query": answer.get("query"), "surface": "search",
             "ts": now, "trace_id": answer["trace_id"], "position": upper - 1,
             "swapped_with": lower - 1, "logged_at": now}
    try:
        client.index(index=ensure_events_index(client, alias), document=event)
    except (ApiError, TransportError) as exc:  # the answer matters more than its log line
        log.warning("exploration event of %s not stored: %s", answer["trace_id"], exc)


def events_meta(client: Elasticsearch, alias: str) -> dict:
    """The events index's ``_meta``: where the jobs that read the log record the point they
    reached (``airec_sync``'s push, ``model_feedback``'s training); empty while nothing was
    logged."""
    if not client.indices.exists(index=events_index(alias)):
        return {}
    return versions.mapping_meta(client, events_index(alias))


def update_events_meta(client: Elasticsearch, alias: str, **values) -> None:
    versions.put_mapping_meta(client, events_index(alias), **values)


def sessions_logged_since(client: Elasticsearch, alias: str, since: str | None) -> int:
    """Search answers with impressions stored (``logged_at``) after ``since`` (all of them
    when None): the volume of new traffic."""
    index = events_index(alias)
    if not client.indices.exists(index=index):
        return 0
    filters = [{"term": {"type": "impression"}}, {"exists": {"field": "trace_id"}}]
    if since:
        filters.append({"range": {"logged_at": {"gt": since}}})
    client.indices.refresh(index=index)
    response = client.search(index=index, size=0, query={"bool": {"filter": filters}},
                             aggs={"sessions": {"cardinality": {"field": "trace_id",
                                                                "precision_threshold": 40000}}})
    return int(response["aggregations"]["sessions"]["value"])


def user_history(client: Elasticsearch, alias: str, user_id: str, limit: int = 50,
                 consumed: int = 5000) -> tuple[list[dict], set[str]]:
    """The user's ``limit`` most recent positive events (click, helped, up), newest first,
    and every document they consumed (up to ``consumed`` of them): one search."""
    index = events_index(alias)
    if not client.indices.exists(index=index):
        return [], set()
    response = client.search(
        index=index, size=limit, sort=[{"ts": "desc"}],
        query={"bool": {"filter": [{"term": {"user_id": user_id}},
                                   {"terms": {"type": list(POSITIVE)}}]}},
        aggs={"docs": {"terms": {"field": "doc_id", "size": consumed}}})
    recent = [h["_source"] for h in response["hits"]["hits"]]
    return recent, {b["key"] for b in response["aggregations"]["docs"]["buckets"]}


def click_counts(client: Elasticsearch, alias: str, size: int = 100) -> dict[str, int]:
    """Clicks per document, most clicked first (the popularity fallback)."""
    index = events_index(alias)
    if not client.indices.exists(index=index):
        return {}
    response = client.search(index=index, size=0, query={"term": {"type": "click"}},
                             aggs={"docs": {"terms": {"field": "doc_id", "size": size}}})
    return {b["key"]: b["doc_count"] for b in response["aggregations"]["docs"]["buckets"]}


def recent_counts(client: Elasticsearch, alias: str, doc_ids: list[str],
                  since: datetime) -> dict[str, int]:
    """Positive events per document of ``doc_ids`` since ``since`` (the learned ranker's
    recent popularity): one search."""
    index = events_index(alias)
    if not doc_ids or not client.indices.exists(index=index):
        return {}
    response = client.search(index=index, size=0, query={"bool": {"filter": [
        {"terms": {"doc_id": doc_ids}}, {"terms": {"type": list(POSITIVE)}},
        {"range": {"ts": {"gte": since.isoformat()}}}]}},
        aggs={"docs": {"terms": {"field": "doc_id", "size": len(doc_ids)}}})
    return {b["key"]: b["doc_count"] for b in response["aggregations"]["docs"]["buckets"]}


def training_pairs(client: Elasticsearch, alias: str) -> Iterator[dict]:
    """``{"query", "doc_id", "label"}`` for every event with a query that says whether the
    document answered it: 1 for a click, ``helped`` or ``up``; 0 for ``down``."""
    index = events_index(alias)
    if not client.indices.exists(index=index):
        return
    for hit in helpers.scan(client, index=index, query={"query": {"bool": {
            "filter": [{"terms": {"type": [*POSITIVE, *NEGATIVE]}},
                       {"exists": {"field": "query"}}]}}}):
        source = hit["_source"]
        yield {"query": source["query"], "doc_id": source["doc_id"],
               "label": 0 if source["type"] in NEGATIVE else 1}


def export_training_pairs(client: Elasticsearch, alias: str, out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(out, "w", encoding="utf-8") as handle:
        for pair in training_pairs(client, alias):
            handle.write(json.dumps(pair) + "\n")
            count += 1
    return count
