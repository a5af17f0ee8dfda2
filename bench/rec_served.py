"""``/recommend/user`` as served, on a real log: the items indexed as documents in a real
Elasticsearch, the training events logged as clicks, ``rec_train``'s ``learn`` run on
them, and ``recommend.for_user`` - the code behind the route - called for every user, timed.

    python -m bench.rec_served [--log DIR] [--cut all-users|newest-users] [--users N] [--tune]

Same protocol as ``bench.rec_movielens`` (whose offline table tuned the served defaults on
the validation split): per user the last two events by time held out, everything before
them logged; candidates are what ``for_user`` produces (content neighbours of recent
clicks, the stored collaborative neighbours, popularity), so this measures the served
pipeline whole, with its candidate limits. ``learn`` also tunes the blend on the logged
training events (each user's latest one held out, ``ragrec.recs.tuning``) and fits the
learned ranker, kept when it beats the tuned blend out of fold and then registered and
served through the model resolver's ``rank`` (the model server's ``/rank`` when there is
an endpoint; in process here): the table reports the MovieLens-tuned (shipped) weights, the
per-deployment ones and the learned ranker side by side. ``--cut newest-users`` tests only
the 20 % of users who arrived last. Latency is per call, in process, one caller, after 5
warm-up calls; the cross-encoder stage is off (the base bundle has no reranker).
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench import MOVIELENS
from bench.rec_movielens import COLD_USERS, CUTS, K, load, samples, split_last
from bench.rec_offline import scores

ALIAS = "bench-rec-log"
WARM_UP = 5
INTERESTS = (5, 10)  # --tune's grid of RecSettings' candidate limits
PER_INTEREST = (30, 60)


def doc_id(item: str) -> str:
    return f"{item}.md"


def build_index(client, layout, items: list[dict]) -> None:
    """The items as Markdown documents (``# title``, then the text) behind ``ALIAS``;
    reused when it already holds them with this model version."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.indexing import versions
    from ragrec.sources import open_source
    from ragrec.sync import IngestOptions, Ingestor

    live = versions.current_version(client, ALIAS)
    if live and versions.index_meta(client, live).get("model_version") == layout.version:
        count = client.search(index=ALIAS, size=0, aggs={"docs": {"cardinality": {
            "field": "doc_id"}}})["aggregations"]["docs"]["value"]
        if count >= 0.99 * len(items):  # cardinality is approximate
            return
    folder = Path(tempfile.mkdtemp(prefix="bench-rec-items-"))
    for item in items:
        (folder / doc_id(str(item["id"]))).write_text(
            f"# {item['title']}\n\n{item.get('text') or item['title']}\n", encoding="utf-8")
    print(f"indexing {len(items)} items into {ALIAS} ...", flush=True)
    Ingestor(client, encoder_for(layout.embedder_dir), ModelTokenizer(layout.embedder_dir),
             IngestOptions(show_progress=True)).ingest(open_source(str(folder)), ALIAS)
    client.indices.refresh(index=ALIAS)


def log_training(client, train_events) -> None:
    from elasticsearch import NotFoundError

    from ragrec.recs import events as event_log
    from ragrec.recs import setup as rec_setup

    client.indices.delete(index=event_log.events_index(ALIAS), ignore_unavailable=True)
    try:  # a fresh deployment: no live setup from an earlier log or cut to defend
        rec_setup.write_setup(client, ALIAS, None)
    except NotFoundError:
        pass
    rows = [{"user_id": e.user, "doc_id": doc_id(e.item), "type": "click",
             "ts": datetime.fromtimestamp(e.ts, UTC)} for e in train_events]
    for start in range(0, len(rows), 5000):
        event_log.log_events(client, ALIAS, event_log.normalise_events(rows[start:start + 5000]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=MOVIELENS)
    parser.add_argument("--users", type=int, default=0, help="a sample (default: all)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tune", action="store_true",
                        help="first the candidate limits on the validation split")
    parser.add_argument("--cut", choices=CUTS, default="all-users",
                        help="who is tested: every user's last 2 events, or only the newest "
                             "20%% of users'")
    args, _ = parser.parse_known_args()  # bench/run passes rec_movielens' flags too
    if not (args.log / "events.tsv").is_file():
        raise SystemExit(f"needs {args.log}/events.tsv and items.jsonl")
    from ragrec.config import RegistrySettings
    from ragrec.es_client import connect
    from ragrec.models.resolver import ModelResolver
    from ragrec.models.uris import load_layout
    from ragrec.recs import recommend, training
    from ragrec.recs import setup as rec_setup
    from ragrec.recs.interactions import Interactions
    from ragrec.recs.setup import RecSettings, served_settings
    from ragrec.recs.tuning import DEFAULT_TUNING

    started = time.monotonic()
    events, items = load(args.log)
    known = {str(i["id"]) for i in items}
    events = [e for e in events if e.item in known]
    train_events, held = split_last(events, cut=args.cut)
    client = connect()
    models = ModelResolver(None, RegistrySettings.from_env())
    layout = load_layout("base")
    build_index(client, layout, items)
    shipped = RecSettings()
    if args.tune:  # the candidate limits, on the validation split (never on test)
        fit_events, validation = split_last(train_events)
        log_training(client, fit_events)
        training.learn(client, ALIAS)
        at = datetime.fromtimestamp(max(e.ts for e in fit_events), UTC)
        for interests, per_interest in itertools.product(INTERESTS, PER_INTEREST):
            trial = replace(shipped, interests=interests, blend_per_interest=per_interest)
            ndcg = statistics.mean(
                scores([i["doc_id"].removesuffix(".md") for i in recommend.for_user(
                    client, ALIAS, user, models, layout.version, K, trial, at)["items"]],
                    validation[user], K)[1] for user in sorted(validation))
            print(f"validation: interests {interests}, per interest {per_interest}: "
                  f"NDCG@10 {ndcg:.4f}", flush=True)
    log_training(client, train_events)
    learned = training.learn(client, ALIAS)
    fitted = Interactions.build(train_events)
    users_per_item = dict(zip(fitted.items, fitted.counts(), strict=True))
    users = sorted(held)
    if args.users:
        users = random.Random(args.seed).sample(users, args.users)
    now = datetime.fromtimestamp(max(e.ts for e in train_events), UTC)
    tuning = learned["tuning"]
    if "skipped" in tuning:
        print(f"rec_train did not tune the blend: {tuning['skipped']}")
    else:
        ranker = tuning.get("ranker") or {}
        print(f"rec_train tuned the blend on {tuning['validation']['users']} validation users "
              f"({tuning['validation']['cases']} cases: each one's last "
              f"{tuning['validation']['positions']} training events held out): neighbours "
              f"{tuning['method']} (best NDCG@10 by model: {tuning['methods']}), weights "
              f"{tuning['weights']} NDCG@10 "
              f"{tuning['validation']['ndcg@10']:.4f} vs shipped {tuning['baseline']['weights']} "
              f"{tuning['baseline']['ndcg@10']:.4f}; out of fold ({ranker.get('folds')} folds): "
              f"blend {ranker.get('blend_ndcg@10')}, learned ranker "
              f"{ranker.get('ranker_ndcg@10')}; installed: {tuning['install']}, ranker: "
              f"{(ranker.get('installed') or {}).get('version', 'not kept')}", flush=True)
    deployment = served_settings(client, ALIAS)
    ranker_row = "learned ranker + cold place"
    if not deployment.ranker:  # measured anyway: was validation right to turn it down?
        print("learning again with the ranker forced in, for its row ...", flush=True)
        rec_setup.write_setup(client, ALIAS, None)
        training.learn(client, ALIAS, tuning=replace(DEFAULT_TUNING, ranker_margin=-math.inf))
        ranker_row = "learned ranker (forced: not kept)"
    variants = {"MovieLens blend + cold place (shipped)": shipped,
                "MovieLens blend, no cold place": replace(shipped, cold_slots=0),
                "per-deployment blend + cold place": replace(deployment, ranker=""),
                ranker_row: served_settings(client, ALIAS)}
    rows = {}
    _, new_items = samples(held, [str(i["id"]) for i in items], args.seed, 150)
    runs = [(name, settings, None) for name, settings in variants.items() if settings]
    runs.append(("new items (simulated), shipped", shipped, new_items))
    for name, settings, cold_items in runs:
        if cold_items:  # every training event on them removed, then learned again
            log_training(client, [e for e in train_events if e.item not in cold_items])
            training.learn(client, ALIAS)
        recall, ndcg, shown, seconds, cold_hits, cold_total = [], [], set(), [], 0, 0
        for n, user in enumerate(users):
            began = time.perf_counter()
            result = recommend.for_user(client, ALIAS, user, models, layout.version, K,
                                        settings, now)
            if n >= WARM_UP:
                seconds.append(time.perf_counter() - began)
            ranked = [i["doc_id"].removesuffix(".md") for i in result["items"]]
            r, g = scores(ranked, held[user], K)
            recall.append(r)
            ndcg.append(g)
            shown.update(ranked)
            cold = (held[user] & cold_items if cold_items else
                    {i for i in held[user] if users_per_item.get(i, 0) <= COLD_USERS})
            cold_hits += len(cold & set(ranked))
            cold_total += len(cold)
        seconds.sort()
        rows[name] = {"cold_total": cold_total,
                      "recall": statistics.mean(recall), "ndcg": statistics.mean(ndcg),
                      "coverage": len(shown) / len(known),
                      "cold": cold_hits / cold_total if cold_total else 0.0,
                      "p50": 1000 * seconds[len(seconds) // 2],
                      "p99": 1000 * seconds[int(0.99 * (len(seconds) - 1))]}
    print(f"\n=== /recommend/user as served: {args.log.name}, cut {args.cut}, on Elasticsearch "
          f"({len(train_events)} training events logged, {len(users)} users, "
          f"{len(known)} items; learned: {learned['method']}, "
          f"{learned['items_with_neighbours']} items with neighbours) ===")
    print("protocol: as the offline table (last 2 events per user held out, the rest logged as "
          "clicks, candidates = what for_user generates, consumed items excluded); cold = held-"
          f"out events on items with <= {COLD_USERS} training users "
          f"({next(iter(rows.values()))['cold_total']}), or in the last row on the simulated "
          "new items (10% of the catalogue, their training events removed, learned again; "
          f"{rows['new items (simulated), shipped']['cold_total']}); latency: "
          f"for_user in process on one caller after {WARM_UP} warm-up calls, no cross-encoder")
    print(f"{'variant':<38} {'Recall@10':>9} {'NDCG@10':>8} {'coverage':>8} {'cold R@10':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7}")
    for name, row in rows.items():
        print(f"{name:<38} {row['recall']:9.4f} {row['ndcg']:8.4f} {row['coverage']:8.3f} "
              f"{row['cold']:9.4f} {row['p50']:7.1f} {row['p99']:7.1f}")
    print(f"seconds: {time.monotonic() - started:.0f}")


if __name__ == "__main__":
    main()
