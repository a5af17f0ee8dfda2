"""Offline evaluation of user recommendations on held-out interactions: Recall@10 and
NDCG@10 of ragrec's recommender (the code behind ``/recommend/user``: interests fused with
popularity) vs a popularity baseline, with its parts (a single mean-profile kNN, interests
alone) beside them, in one run.

    bench/run rec_offline
    python -m bench.rec_offline --users 300 --seed 7

The interaction log is simulated, and built so the test is not circular: each user has an
interest (one SciFact train claim) and clicks documents from the **BM25** top 30 of that
claim (rank-decayed), plus, for 30 % of clicks, documents drawn from a global Zipf popularity
- word overlap and popularity, not the embedding model, decide what users click. Each user's
last two clicks (by time) are held out; the earlier ones are logged as events, and both
recommenders see only those. Corpus: one SciFact abstract in ten, indexed with the base
model into ``bench-rec-scifact``.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from datetime import UTC, datetime, timedelta

from bench import SCIFACT

ALIAS = "bench-rec-scifact"


def simulate(client, users: int, clicks_per_user: int, seed: int, topical_depth: int = 30,
             popular_share: float = 0.3) -> dict[str, list[dict]]:
    from ragrec import retrieval
    from ragrec.eval.datasets import BeirDataset

    rng = random.Random(seed)
    data = BeirDataset(SCIFACT)
    claims = [data.queries()[q] for q in sorted(data.qrels("train"))]
    docs = sorted({h["_source"]["doc_id"] for h in client.search(
        index=ALIAS, size=10_000, source=["doc_id"])["hits"]["hits"]})
    popular_order = docs[:]
    rng.shuffle(popular_order)
    zipf = [1 / (rank + 1) ** 1.1 for rank in range(len(popular_order))]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    log: dict[str, list[dict]] = {}
    for number in range(users):
        claim = rng.choice(claims)
        topical = list(dict.fromkeys(h.doc_id for h in retrieval.bm25(client, ALIAS, claim, 60)))
        topical = topical[:topical_depth]
        clicked: list[str] = []
        while len(clicked) < clicks_per_user:
            if topical and rng.random() >= popular_share:
                weights = [1 / (rank + 2) for rank in range(len(topical))]
                doc = rng.choices(topical, weights)[0]
            else:
                doc = rng.choices(popular_order, zipf)[0]
            if doc not in clicked:
                clicked.append(doc)
        user = f"sim-{number:04d}"
        log[user] = [{"user_id": user, "doc_id": doc, "type": "click",
                      "ts": (start + timedelta(hours=number % 24, minutes=5 * i)).isoformat()}
                     for i, doc in enumerate(clicked)]
    return log


def scores(ranked: list[str], held_out: set[str], k: int = 10) -> tuple[float, float]:
    top = ranked[:k]
    hits = [1.0 if d in held_out else 0.0 for d in top]
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(held_out))))
    return sum(hits) / len(held_out), dcg / ideal if ideal else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--clicks", type=int, default=8, help="per user; the last 2 held out")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--topical-depth", type=int, default=30,
                        help="a user's interest: the BM25 top N of their claim")
    parser.add_argument("--popular-share", type=float, default=0.3,
                        help="share of clicks drawn from global popularity")
    args = parser.parse_args()
    if not (SCIFACT / "corpus.jsonl").is_file():
        raise SystemExit("needs ../shared/data/scifact")
    from bench.api_load import build_index
    from ragrec.es_client import connect
    from ragrec.models.uris import load_layout
    from ragrec.recs import content, item_table, recommend, training
    from ragrec.recs import events as event_log
    from ragrec.recs.setup import RecSettings

    client = connect()
    layout = load_layout("base")
    chunks = build_index(client, layout, ALIAS)
    log = simulate(client, args.users, args.clicks, args.seed, args.topical_depth,
                   args.popular_share)
    train = {u: events[:-2] for u, events in log.items()}
    held = {u: {e["doc_id"] for e in events[-2:]} for u, events in log.items()}
    events_index = event_log.events_index(ALIAS)
    client.indices.delete(index=events_index, ignore_unavailable=True)
    # No learned model until rec_train runs below: the interests path first.
    client.indices.delete(index=item_table.feature_table(ALIAS), ignore_unavailable=True)
    event_log.log_events(client, ALIAS, [e for events in train.values() for e in events])
    popularity: dict[str, int] = {}
    for events in train.values():
        for event in events:
            popularity[event["doc_id"]] = popularity.get(event["doc_id"], 0) + 1
    by_count = sorted(popularity, key=lambda d: (-popularity[d], d))
    version = layout.version
    now = datetime(2026, 11, 3, tzinfo=UTC)
    shipped = RecSettings()
    no_popularity = RecSettings(popularity=False)
    names = ("popularity", "mean profile kNN", "interests", "interests + popularity",
             "after rec_train (shipped)")
    totals = {name: [0.0, 0.0] for name in names}
    seconds = {"interests + popularity": 0.0, "after rec_train (shipped)": 0.0}
    rankings_of: dict[str, dict[str, list[str]]] = {}
    for user, events in train.items():
        seen = {e["doc_id"] for e in events}
        vectors = content.doc_vectors(client, ALIAS, sorted(seen))
        profile = content.user_profile(events, vectors, now, shipped.half_life_days)
        mean_knn = [c["doc_id"] for c in content.candidates(client, ALIAS, profile, seen, 10)]
        rankings = {"popularity": [d for d in by_count if d not in seen],
                    "mean profile kNN": mean_knn}
        for name, settings in (("interests", no_popularity),
                               ("interests + popularity", shipped)):
            started = time.monotonic()
            result = recommend.for_user(client, ALIAS, user, None, version, 10, settings, now)
            seconds[name] = seconds.get(name, 0.0) + time.monotonic() - started
            rankings[name] = [item["doc_id"] for item in result["items"]]
        rankings_of[user] = rankings
    learned = training.learn(client, ALIAS)  # what the rec_train DAG does
    for user in train:
        started = time.monotonic()
        result = recommend.for_user(client, ALIAS, user, None, version, 10, shipped, now)
        seconds["after rec_train (shipped)"] += time.monotonic() - started
        rankings_of[user]["after rec_train (shipped)"] = [i["doc_id"] for i in result["items"]]
    for user, rankings in rankings_of.items():
        for name, ranking in rankings.items():
            recall, ndcg = scores(ranking, held[user])
            totals[name][0] += recall
            totals[name][1] += ndcg
    users = len(train)
    print(f"\n=== recommendations, offline ({users} simulated users, {args.clicks - 2} "
          f"clicks each seen, 2 held out; interest = BM25 top {args.topical_depth}, "
          f"{args.popular_share:.0%} popular clicks; {chunks} chunks in {ALIAS}) ===")
    print(f"rec_train learned {learned['method']} from the logged events; "
          f"the last row is /recommend/user after it, the rows above before it")
    for name, (recall, ndcg) in totals.items():
        timing = (f"  {1000 * seconds[name] / users:.0f} ms per user"
                  if name in seconds else "")
        print(f"{name:>25}: Recall@10 {recall / users:.4f}  NDCG@10 {ndcg / users:.4f}"
              f"{timing}")
    base = totals["popularity"]
    for name in seconds:
        ours = totals[name]
        print(f"{name} vs popularity: Recall@10 x{ours[0] / base[0]:.2f}, "
              f"NDCG@10 x{ours[1] / base[1]:.2f}")


if __name__ == "__main__":
    main()
