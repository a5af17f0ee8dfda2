"""Collaborative neighbours learned from the events index and stored in the feature table.

``learn`` reads the positive events of ``<alias>-events`` (clicks, ``helped``, thumbs up),
learns item neighbours (EASE while the consumed catalogue fits ``CfSettings.ease_max_items``,
co-consumption kNN beyond), and writes each item's top neighbours into its row of
``<alias>-rec-items`` (``neighbours``: ``[{"doc_id", "weight"}]``, with the method, the time
it was learned and ``consumers``, how many users consumed the item); rows of items nobody
consumed get an empty list, so a stale list never outlives a retrain. ``neighbour_lists``
and ``consumers`` read them back for serving (one ``mget`` each)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from elasticsearch import Elasticsearch, helpers

from ragrec.api.events import POSITIVE, events_index
from ragrec.indexing.bulk_writer import run_bulk
from ragrec.jobs import recsync
from ragrec.recs import neighbours as nb
from ragrec.recs.interactions import Interactions, event_of


@dataclass(frozen=True)
class CfSettings:
    """Defaults chosen on MovieLens 100K's time-based validation split (bench/run
    rec_offline); a customer's log can be tuned the same way."""

    neighbours: int = 100
    l2: float = 1000.0  # EASE regularisation
    shrink: float = 10.0  # co-consumption kNN: popularity normalisation's damping
    alpha: float = 0.5
    half_life_days: float | None = None  # calendar decay of old events in the fit
    ease_max_items: int = 10_000

    def to_dict(self) -> dict:
        return asdict(self)


class NoEvents(LookupError):
    pass


def positive_events(client: Elasticsearch, alias: str):
    index = events_index(alias)
    if not client.indices.exists(index=index):
        return
    for hit in helpers.scan(client, index=index, _source=["user_id", "doc_id", "ts"],
                            query={"query": {"terms": {"type": list(POSITIVE)}}}):
        yield event_of(hit["_source"])


def learn(client: Elasticsearch, alias: str, settings: CfSettings = CfSettings()) -> dict:
    table = recsync.feature_table(alias)
    if not client.indices.exists(index=table):
        recsync.sync_feature_table(client, alias)
    rows = {h["_source"]["doc_id"]: h["_id"] for h in helpers.scan(
        client, index=table, _source=["doc_id"], query={"query": {"match_all": {}}})}
    events = [e for e in positive_events(client, alias) if e.item in rows]
    if not events:
        raise NoEvents(f"no click, helped or up events on documents of {alias} in "
                       f"{events_index(alias)}: nothing to learn from")
    data = Interactions.build(events, settings.half_life_days, items=sorted(rows))
    consumed = int((data.counts() > 0).sum())
    if consumed <= settings.ease_max_items:
        model = nb.ease(data.matrix, data.items, settings.l2, settings.neighbours,
                        settings.ease_max_items)
    else:
        model = nb.cooccurrence(data.matrix, data.items, settings.neighbours, settings.shrink,
                                settings.alpha)
    recsync.ensure_neighbour_fields(client, alias)
    now = datetime.now(UTC).isoformat()
    actions, with_neighbours = [], 0
    users_per_item = data.counts()
    for doc_id, row_id in rows.items():
        pairs = model.of(doc_id)
        with_neighbours += bool(pairs)
        actions.append({"_op_type": "update", "_index": table, "_id": row_id, "doc": {
            "neighbours": [{"doc_id": d, "weight": round(w, 6)} for d, w in pairs],
            "neighbours_model": model.method, "neighbours_at": now,
            "consumers": int(users_per_item[data.item_index[doc_id]])}})
    outcome = run_bulk(client, actions)
    if outcome.failed:
        raise RuntimeError(f"neighbours not stored: {next(iter(outcome.failed.values()))}")
    client.indices.refresh(index=table)
    return {"table": table, "method": model.method, "events": len(events),
            "users": len(data.users), "items": len(rows), "consumed_items": consumed,
            "items_with_neighbours": with_neighbours, "settings": settings.to_dict()}


def neighbour_lists(client: Elasticsearch, alias: str,
                    doc_ids: list[str]) -> dict[str, list[tuple[str, float]]]:
    """doc_id -> its stored neighbours (absent: never learned, or no such item)."""
    table = recsync.feature_table(alias)
    if not doc_ids or not client.indices.exists(index=table):
        return {}
    response = client.mget(index=table, ids=[recsync.item_id(d) for d in doc_ids],
                           source=["doc_id", "neighbours"])
    lists = {}
    for doc in response["docs"]:
        source = doc.get("_source") if doc.get("found") else None
        if source and "neighbours" in source:
            lists[source["doc_id"]] = [(n["doc_id"], float(n["weight"]))
                                       for n in source["neighbours"]]
    return lists


def consumers(client: Elasticsearch, alias: str, doc_ids: list[str]) -> dict[str, int]:
    """doc_id -> how many users consumed it at the last ``learn`` (0 for a document that
    came after it)."""
    table = recsync.feature_table(alias)
    if not doc_ids or not client.indices.exists(index=table):
        return dict.fromkeys(doc_ids, 0)
    response = client.mget(index=table, ids=[recsync.item_id(d) for d in doc_ids],
                           source=["consumers"])
    return {d: int(((doc.get("_source") or {}).get("consumers")) or 0)
            for d, doc in zip(doc_ids, response["docs"], strict=True)}


def collaborative_scores(client: Elasticsearch, alias: str,
                         profile: dict[str, float]) -> dict[str, float]:
    """The served form of ``ItemNeighbours.scores``: the profile's stored neighbour lists,
    summed by the profile's weights, its own items left out."""
    lists = neighbour_lists(client, alias, list(profile))
    items = [d for d in profile if d in lists]
    return nb.score_history((lists[d] for d in items), (profile[d] for d in items), profile)
