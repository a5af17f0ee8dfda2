"""Collaborative neighbours learned from the events index and stored in the feature table.

``learn`` reads the positive events of ``<alias>-events`` (clicks, ``helped``, thumbs up),
learns item neighbours (EASE while the consumed catalogue fits ``CfSettings.ease_max_items``,
co-consumption kNN beyond), and writes each item's top neighbours into its row of
``<alias>-rec-items`` (``neighbours``: ``[{"doc_id", "weight"}]``, with the method, the time
it was learned and ``consumers``, how many users consumed the item); rows of items nobody
consumed get an empty list, so a stale list never outlives a retrain. It also fits the
recommendation tower (``ragrec.recs.tower``) on the consumption sequences and writes every
row's ``rec_vector``, new documents included: what the cold place searches.
``item_table.neighbour_lists`` and ``cold_start.cold_candidates`` read them back for
serving."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
from elasticsearch import Elasticsearch, helpers

from ragrec.config import RegistrySettings
from ragrec.indexing.bulk_writer import run_bulk
from ragrec.models import ranker
from ragrec.recs import item_table
from ragrec.recs import neighbours as nb
from ragrec.recs import setup as rec_setup
from ragrec.recs.events import POSITIVE, events_index
from ragrec.recs.interactions import Event, Interactions, event_of
from ragrec.recs.tower import TowerSettings, next_item_pairs
from ragrec.recs.tower import train as train_tower
from ragrec.recs.tuning import DEFAULT_TUNING, TuneSettings, tune

log = logging.getLogger(__name__)


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
    # The recommendation tower (rec_vector): temperature and epochs chosen by the new-item
    # shelf's recall on MovieLens 100K's validation split; below min_tower_pairs
    # consecutive pairs, rec_vector is the content vector itself.
    tower: TowerSettings = TowerSettings(epochs=4, temperature=0.1)
    min_tower_pairs: int = 1000

    def to_dict(self) -> dict:
        return asdict(self)


NEIGHBOUR_METHODS = ("ease", "cooccurrence")


class NoEvents(LookupError):
    pass


def positive_events(client: Elasticsearch, alias: str):
    index = events_index(alias)
    if not client.indices.exists(index=index):
        return
    for hit in helpers.scan(client, index=index, _source=["user_id", "doc_id", "ts"],
                            query={"query": {"terms": {"type": list(POSITIVE)}}}):
        yield event_of(hit["_source"])


def fit_neighbours(data: Interactions, settings: CfSettings,
                   method: str | None = None) -> nb.ItemNeighbours:
    """``method`` ("ease" or "cooccurrence"); None: EASE while the consumed catalogue fits
    ``ease_max_items``, co-consumption beyond."""
    consumed = int((data.counts() > 0).sum())
    if method not in (None, *NEIGHBOUR_METHODS):
        raise ValueError(f"unknown neighbour method {method!r}: use one of {NEIGHBOUR_METHODS}")
    if method == "ease" or method is None and consumed <= settings.ease_max_items:
        return nb.ease(data.matrix, data.items, settings.l2, settings.neighbours,
                       settings.ease_max_items)
    return nb.cooccurrence(data.matrix, data.items, settings.neighbours, settings.shrink,
                           settings.alpha)


def learn(client: Elasticsearch, alias: str, settings: CfSettings = CfSettings(),
          tuning: TuneSettings | None = DEFAULT_TUNING,
          registry: RegistrySettings | None = None) -> dict:
    """Neighbours and the tower from the whole log into the feature table; first, unless
    ``tuning`` is None, the blend weights tuned on the log's latest events and the learned
    ranker (``recs.tuning``), installed as the live setup when they score at least as well
    as it - the ranker as a new version of ``<alias>-ranker`` in ``registry`` (default:
    ``RegistrySettings.from_env()``), served by the model server's ``/rank``."""
    registry = registry or RegistrySettings.from_env()
    table = item_table.feature_table(alias)
    synced = item_table.sync_feature_table(client, alias)  # a row for every document, new ones too
    synced.pop("deleted_ids")
    rows, vectors = {}, {}
    for hit in helpers.scan(client, index=table, _source=["doc_id", "vector"],
                            query={"query": {"match_all": {}}}):
        rows[hit["_source"]["doc_id"]] = hit["_id"]
        vectors[hit["_source"]["doc_id"]] = hit["_source"]["vector"]
    events = [e for e in positive_events(client, alias) if e.item in rows]
    if not events:
        raise NoEvents(f"no click, helped or up events on documents of {alias} in "
                       f"{events_index(alias)}: nothing to learn from")
    tuned = _tune(client, alias, events, sorted(rows), settings, tuning, registry)
    data = Interactions.build(events, settings.half_life_days, items=sorted(rows))
    consumed = int((data.counts() > 0).sum())
    model = fit_neighbours(data, settings, tuned.get("fit_method"))
    order = sorted(rows)
    matrix = np.asarray([vectors[d] for d in order], dtype=np.float32)
    pairs = next_item_pairs(data.sequences, order, settings.tower.max_pairs,
                            settings.tower.seed)
    tower_report = {"pairs": len(pairs), "trained": False}
    projected = matrix
    if len(pairs) >= settings.min_tower_pairs:
        started = time.monotonic()

        def progress(epoch: int, loss: float) -> None:
            spent = time.monotonic() - started
            log.info("tower epoch %d/%d: loss %.4f, ETA %.0f s", epoch, settings.tower.epochs,
                     loss, spent / epoch * (settings.tower.epochs - epoch))

        tower, tower_report = train_tower(matrix, {d: n for n, d in enumerate(order)}, pairs,
                                          settings.tower, progress)
        tower_report["trained"] = True
        projected = tower.project(matrix)
    item_table.ensure_neighbour_fields(client, alias, matrix.shape[1])
    now = datetime.now(UTC).isoformat()
    actions, with_neighbours = [], 0
    users_per_item = data.counts()
    for n, doc_id in enumerate(order):
        neighbours = model.of(doc_id)
        with_neighbours += bool(neighbours)
        actions.append({"_op_type": "update", "_index": table, "_id": rows[doc_id], "doc": {
            "neighbours": [{"doc_id": d, "weight": round(w, 6)} for d, w in neighbours],
            "neighbours_model": model.method, "neighbours_at": now,
            "consumers": int(users_per_item[data.item_index[doc_id]]),
            "rec_vector": projected[n].tolist()}})
    outcome = run_bulk(client, actions)
    if outcome.failed:
        raise RuntimeError(f"neighbours not stored: {next(iter(outcome.failed.values()))}")
    client.indices.refresh(index=table)
    if tuned.get("install"):
        setup = {**{k: tuned[k] for k in ("weights", "validation", "baseline")},
                 "method": model.method, "events": len(events), "tuned_at": now}
        fitted = (tuned.get("ranker") or {}).pop("model", None)
        if fitted is not None:
            setup["ranker"] = ranker.register(fitted, alias, registry, {
                k: v for k, v in tuned["ranker"].items() if k != "wins"})
            tuned["ranker"]["installed"] = setup["ranker"]
            log.info("learned ranker %s installed", setup["ranker"]["version"])
        rec_setup.write_setup(client, alias, setup)
    elif tuned.get("ranker"):
        tuned["ranker"].pop("model", None)
    return {"table": table, "method": model.method, "events": len(events),
            "users": len(data.users), "items": len(rows), "consumed_items": consumed,
            "items_with_neighbours": with_neighbours, "tower": tower_report,
            "tuning": tuned, "sync": synced, "settings": settings.to_dict()}


def _tune(client: Elasticsearch, alias: str, events: list[Event], items: list[str],
          settings: CfSettings, tuning: TuneSettings | None,
          registry: RegistrySettings | None) -> dict:
    live = rec_setup.read_setup(client, alias, fresh=True)
    if tuning is None:
        return {"install": False, "skipped": "not asked for",
                "fit_method": (live or {}).get("method")}
    live_ranker = None
    if live and live.get("ranker"):
        try:
            live_ranker = ranker.load_reference(live["ranker"]["version"], registry)
        except LookupError as exc:
            log.warning("the live ranker cannot be loaded (%s): compared as its blend", exc)

    def fit_model(fit: list[Event], method: str) -> nb.ItemNeighbours:
        return fit_neighbours(Interactions.build(fit, settings.half_life_days, items=items),
                              settings, method)

    consumed = len({e.item for e in events})
    methods = tuple(m for m in tuning.methods
                    if m != "ease" or consumed <= settings.ease_max_items) or ("cooccurrence",)
    started = time.monotonic()
    report = tune(client, alias, events, fit_model, live, tuning, live_ranker=live_ranker,
                  methods=methods)
    # What learn fits: the tuned method when installed, else the live setup's.
    report["fit_method"] = report.get("method") if report.get("install") else \
        (live or {}).get("method")
    report["seconds"] = round(time.monotonic() - started, 1)
    if "skipped" in report:
        log.info("blend not tuned: %s", report["skipped"])
    else:
        k = f"ndcg@{tuning.k}"
        log.info("blend tuned on %d validation users: %s %s NDCG@%d %.4f (shipped %s %.4f%s); "
                 "%s", report["validation"]["users"], report["method"], report["weights"],
                 tuning.k,
                 report["validation"][k], report["baseline"]["weights"],
                 report["baseline"][k],
                 f", live {report['live'][k]:.4f}" if "live" in report else "",
                 "installed" if report["install"] else "the live setup scores better: kept")
    return report
