"""Recommendations on a real interaction log (MovieLens 100K by default; any folder with
``events.tsv`` - user, item, unix timestamp - and ``items.jsonl`` - id, title, text): the
collaborative neighbours of ``ragrec.recs`` against popularity and content neighbours, and
an offline blend, in one run.

    python -m bench.rec_movielens [--log DIR] [--new-users 150]

Protocol (printed with the table): every event an implicit positive; per user, events sorted
by time, the last two held out (test); the two before those are the validation split that
tunes every method's settings and the blend's weights (fit on the rest); the test run
refits on everything before the test events. Candidates: every catalogue item the user has
not consumed in training. Cold items: test items with at most 3 training users (scored over
the users holding one). New users: a sample of users whose training history is cut to its
last 2 events, in the fit and in the profile."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import MOVIELENS
from bench.rec_offline import scores  # Recall@k, NDCG@k: one definition for both logs
from ragrec.recs.cold_start import with_cold_slots
from ragrec.recs.setup import RecSettings
from ragrec.recs.training import CfSettings

K = 10
COLD_USERS = 3
CUTS = ("all-users", "newest-users")


def load(folder: Path):
    from ragrec.recs.interactions import Event

    lines = (folder / "events.tsv").read_text().splitlines()[1:]
    events = [Event(u, i, float(t)) for u, i, t in (line.split("\t")[:3] for line in lines)]
    items = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()
             if line.strip()]
    return events, items


def split_last(events, count: int = 2, cut: str = "all-users"):
    """(earlier, held out) per user, by time (file order breaks ties). ``cut``
    "newest-users": only the 20 % of users who arrived last (by their first event) are held
    out, everyone else's events are all earlier ones - a deployment's newcomers."""
    per_user: dict[str, list] = {}
    for event in sorted(events, key=lambda e: e.ts):
        per_user.setdefault(event.user, []).append(event)
    if cut not in CUTS:
        raise SystemExit(f"unknown --cut {cut!r}: use one of {CUTS}")
    tested = set(per_user)
    if cut == "newest-users":
        arrival = sorted(per_user, key=lambda u: (per_user[u][0].ts, u))
        tested = set(arrival[int(0.8 * len(arrival)):])
    earlier, held = [], {}
    for user, rows in per_user.items():
        if len(rows) <= count or user not in tested:
            earlier.extend(rows)
            continue
        earlier.extend(rows[:-count])
        held[user] = {e.item for e in rows[-count:]}
    return earlier, held


class Content:
    """Content neighbours: cosine of the base model's embeddings of title + text."""

    def __init__(self, items: list[dict], order: list[str]):
        from ragrec.embedding import encoder_for
        from ragrec.models.uris import load_layout

        by_id = {str(i["id"]): i for i in items}
        texts = [f"{by_id[i]['title']}. {by_id[i].get('text', '')}" for i in order]
        encoder = encoder_for(load_layout("base").embedder_dir)
        self.vectors = np.asarray(encoder.embed(texts).vectors, dtype=np.float32)
        self.index = {item: n for n, item in enumerate(order)}

    def scores(self, history: dict[str, float]) -> np.ndarray:
        rows = [self.index[i] for i in history if i in self.index]
        weights = np.asarray([history[i] for i in history if i in self.index])
        sims = np.maximum(self.vectors[rows] @ self.vectors.T, 0.0)
        return weights @ sims


def minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


@dataclass(frozen=True)
class ColdPolicy:
    """``RecSettings``' cold places: ``slots`` for items with at most ``users`` consumers
    whose cosine to the user's ``interests`` newest items (their weighted mean), in the
    tower's space, is at least ``min_similarity`` (``cold_start.cold_candidates``)."""

    slots: int
    users: int
    min_similarity: float
    interests: int = 5


class Evaluation:
    """One split: the fit events, the held-out items, and every method's ranking."""

    def __init__(self, fit_events, held, catalogue: list[str], content: Content,
                 half_life_days: float | None = None, profile_half_life: float | None = None):
        from ragrec.recs.interactions import Interactions

        self.data = Interactions.build(fit_events, half_life_days, items=catalogue)
        self.held = {u: h for u, h in held.items() if u in self.data.user_index}
        self.counts = self.data.counts()
        self.content = content
        self.catalogue = catalogue
        self.order = np.asarray([content.index[i] for i in catalogue])
        self.profile_half_life = profile_half_life
        self.cold_vectors = content.vectors[self.order]  # rec_vector: base until a tower

    def with_tower(self, settings) -> Evaluation:
        """rec_vector from a tower fitted on this split's sequences (as ``learn`` does)."""
        from ragrec.recs import tower as tw

        index = {item: n for n, item in enumerate(self.catalogue)}
        pairs = tw.next_item_pairs(self.data.sequences, index, settings.max_pairs,
                                   settings.seed)
        fitted, _ = tw.train(self.cold_vectors, index, pairs, settings)
        self.cold_vectors = fitted.project(self.cold_vectors)
        return self

    def cold_scores(self, user: str, interests: int = 5) -> np.ndarray:
        """Cosine of every item to the weighted mean of the user's newest items' rec_vectors
        (what ``cold_start.cold_candidates`` asks Elasticsearch)."""
        profile = self.profile(user)
        recent = sorted(profile, key=lambda d: -profile[d])[:interests]
        query = sum(profile[d] * self.cold_vectors[self.data.item_index[d]] for d in recent)
        norm = float(np.linalg.norm(query)) if recent else 0.0
        return self.cold_vectors @ (query / norm) if norm else np.zeros(len(self.catalogue))

    def profile(self, user: str) -> dict[str, float]:
        return self.data.profile(user, self.profile_half_life)

    def cf_scores(self, neighbours, user: str) -> np.ndarray:
        scores = np.zeros(len(self.catalogue))
        for item, value in neighbours.scores(self.profile(user)).items():
            scores[self.data.item_index[item]] = value
        return scores

    def top(self, user: str, scores: np.ndarray, count: int, mask=None) -> list[str]:
        seen = self.data.history(user)
        order = np.argsort(-scores, kind="stable")
        ranked = []
        for column in order:
            if mask is not None and not mask[column]:
                continue
            item = self.catalogue[column]
            if item not in seen:
                ranked.append(item)
                if len(ranked) == count:
                    break
        return ranked

    def rank(self, user: str, scores: np.ndarray, cold: ColdPolicy | None = None) -> list[str]:
        """The top ``K``; with a cold policy, its last places for items nobody consumed
        whose content is close enough (``ragrec.recs.cold_start``, as served)."""
        if cold is None or not cold.slots:
            return self.top(user, scores, K)
        ranked = self.top(user, scores, K + cold.slots)
        similarity = self.cold_scores(user, cold.interests)
        mask = (self.counts <= cold.users) & (similarity >= cold.min_similarity)
        shown = set(ranked[:K - cold.slots])
        mask &= np.asarray([i not in shown for i in self.catalogue])
        return with_cold_slots(ranked, self.top(user, similarity, cold.slots, mask), K,
                               cold.slots)

    def parts(self, user: str, neighbours) -> dict[str, np.ndarray]:
        history = self.profile(user)
        return {"cf": self.cf_scores(neighbours, user),
                "content": self.content.scores(history)[self.order],
                "popularity": np.log1p(self.counts)}

    def evaluate(self, score_of, users=None, cold: ColdPolicy | None = None) -> dict:
        users = list(self.held) if users is None else users
        recall, ndcg, shown, seconds = [], [], set(), []
        for user in users:
            started = time.perf_counter()
            ranked = self.rank(user, score_of(user), cold)
            seconds.append(time.perf_counter() - started)
            r, n = scores(ranked, self.held[user], K)
            recall.append(r)
            ndcg.append(n)
            shown.update(ranked)
        seconds.sort()
        return {"recall": float(np.mean(recall)), "ndcg": float(np.mean(ndcg)),
                "coverage": len(shown) / len(self.catalogue), "users": len(users),
                "p99_ms": 1000 * seconds[int(0.99 * (len(seconds) - 1))]}

    def cold_recall(self, score_of, items: set[str] | None = None,
                    cold: ColdPolicy | None = None, shelf: bool = False) -> dict:
        """Recall@10 of the held-out events on ``items`` (default: items with at most
        ``COLD_USERS`` training users); ``shelf``: ranked among those items only."""
        if items is None:
            items = {i for n, i in enumerate(self.catalogue) if self.counts[n] <= COLD_USERS}
        mask = np.asarray([i in items for i in self.catalogue])
        hits, total = 0, 0
        for user, held in self.held.items():
            wanted = held & items
            if not wanted:
                continue
            scores = score_of(user)
            ranked = set(self.top(user, scores, K, mask) if shelf
                         else self.rank(user, scores, cold))
            hits += len(wanted & ranked)
            total += len(wanted)
        return {"recall": hits / total if total else 0.0, "items": total,
                "random": K / max(int(mask.sum()), 1)}


def blend_of(weights: dict[str, float]):
    def combine(parts: dict[str, np.ndarray]) -> np.ndarray:
        return sum(w * minmax(parts[name]) for name, w in weights.items() if w)
    return combine


BLEND_GRID = {"cf": (1.0,), "content": (0.0, 0.05, 0.1, 0.2, 0.4),
              "popularity": (0.0, 0.05, 0.1, 0.2)}
KNN_GRID = {"shrink": (0.0, 10.0, 50.0), "alpha": (0.5, 0.7)}
EASE_GRID = {"l2": (100.0, 300.0, 1000.0)}
HALF_LIVES = (None,)  # calendar decay of the fit: 60 days measured equal on validation
PROFILE_HALF_LIVES = (None, 1.0, 2.0, 3.0, 5.0, 10.0)  # in items, newest first
# The cold place's content gate: the loosest whose validation NDCG@10 stays within
# COLD_GATE_COST of the blend without it (the place costs the list its last warm item).
COLD_GATES = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3)
COLD_GATE_COST = 0.01
NEW_ITEM_SHARE = 0.1  # the simulated new items: this share of the catalogue


def tune(validation_events, held, catalogue, content, say) -> dict:
    """Every method's settings, chosen by validation NDCG@10."""
    from ragrec.recs import neighbours as nb

    best: dict[str, tuple[float, dict]] = {}
    for half_life in HALF_LIVES:
        run = Evaluation(validation_events, held, catalogue, content, half_life)
        x, items = run.data.matrix, run.data.items
        models = [("item-kNN", {"shrink": shrink, "alpha": alpha},
                   nb.cooccurrence(x, items, shrink=shrink, alpha=alpha))
                  for shrink, alpha in itertools.product(KNN_GRID["shrink"], KNN_GRID["alpha"])]
        models += [("EASE", {"l2": l2}, nb.ease(x, items, l2=l2)) for l2 in EASE_GRID["l2"]]
        for (name, key, model), recency in itertools.product(models, PROFILE_HALF_LIVES):
            run.profile_half_life = recency
            ndcg = run.evaluate(lambda u, m=model, r=run: r.cf_scores(m, u))["ndcg"]
            if ndcg > best.get(name, (-1, {}))[0]:
                best[name] = (ndcg, {"half_life_days": half_life, "profile_half_life": recency,
                                     **key})
        say(f"tuned half-life {half_life}: {({k: round(v[0], 4) for k, v in best.items()})}")
    settings = {name: key for name, (_, key) in best.items()}
    cf_name = max(("item-kNN", "EASE"), key=lambda n: best[n][0])
    run = Evaluation(validation_events, held, catalogue, content,
                     settings[cf_name]["half_life_days"], settings[cf_name]["profile_half_life"])
    model = fit(cf_name, settings[cf_name], run.data)
    cache = {u: run.parts(u, model) for u in run.held}
    top = (-1.0, {})
    for weights in itertools.product(*BLEND_GRID.values()):
        combine = blend_of(dict(zip(BLEND_GRID, weights, strict=True)))
        ndcg = run.evaluate(lambda u, c=combine: c(cache[u]))["ndcg"]
        if ndcg > top[0]:
            top = (ndcg, dict(zip(BLEND_GRID, weights, strict=True)))
    combine = blend_of(top[1])
    run.with_tower(CfSettings().tower)
    gate, gates = None, {}
    for threshold in COLD_GATES:  # strictest first; keep the loosest within the cost
        policy = ColdPolicy(1, RecSettings().cold_users, threshold)
        gates[threshold] = round(run.evaluate(lambda u, c=combine: c(cache[u]),
                                              cold=policy)["ndcg"], 4)
        if gates[threshold] >= (1 - COLD_GATE_COST) * top[0]:
            gate = threshold
    settings["blend"] = {"cf": cf_name, "weights": top[1], "cold_min_similarity": gate}
    settings["validation_ndcg"] = {**{n: round(v[0], 4) for n, v in best.items()},
                                   "blend": round(top[0], 4),
                                   "blend + 1 cold place, by tower-cosine gate": gates}
    return settings


def fit(name: str, key: dict, data):
    from ragrec.recs import neighbours as nb

    if name == "EASE":
        return nb.ease(data.matrix, data.items, l2=key["l2"])
    return nb.cooccurrence(data.matrix, data.items, shrink=key["shrink"], alpha=key["alpha"])


def samples(test_held, catalogue: list[str], seed: int, new_users: int):
    """The new users' sample and the simulated new items (the same in every benchmark)."""
    rng = random.Random(seed)
    users = rng.sample(sorted(test_held), new_users)
    return users, set(rng.sample(catalogue, int(NEW_ITEM_SHARE * len(catalogue))))


def new_user_events(train_events, held, sample: list[str]):
    """``train_events`` with the sampled users' histories cut to their last two events."""
    chosen = set(sample)
    keep, per_user = [], {}
    for event in sorted(train_events, key=lambda e: e.ts):
        if event.user in chosen:
            per_user.setdefault(event.user, []).append(event)
        else:
            keep.append(event)
    for rows in per_user.values():
        keep.extend(rows[-2:])
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=MOVIELENS)
    parser.add_argument("--new-users", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cut", choices=CUTS, default="all-users",
                        help="who is tested: every user's last 2 events, or only the newest "
                             "20%% of users'")
    args, _ = parser.parse_known_args()  # bench/run passes rec_served's flags too
    if not (args.log / "events.tsv").is_file():
        raise SystemExit(f"needs {args.log}/events.tsv and items.jsonl")
    say = print
    started = time.monotonic()
    events, items = load(args.log)
    catalogue = list(dict.fromkeys(str(i["id"]) for i in items))
    known = set(catalogue)
    events = [e for e in events if e.item in known]
    train_events, test_held = split_last(events, cut=args.cut)
    fit_events, validation_held = split_last(train_events)
    content = Content(items, catalogue)
    settings = tune(fit_events, validation_held, catalogue, content, say)
    shipped, cf_shipped = RecSettings(), CfSettings()
    policy = ColdPolicy(shipped.cold_slots, shipped.cold_users, shipped.cold_min_similarity,
                        shipped.interests)
    new_users, new_items = samples(test_held, catalogue, args.seed, args.new_users)
    slices = {
        "all users": (train_events, None, None),
        "new users": (new_user_events(train_events, test_held, new_users), new_users, None),
        "new items (simulated)": ([e for e in train_events if e.item not in new_items], None,
                                  new_items)}
    rows = {}
    for slice_name, (slice_events, users, cold_items) in slices.items():
        runs = {}
        for name in ("item-kNN", "EASE"):
            run = Evaluation(slice_events, test_held, catalogue, content,
                             settings[name]["half_life_days"],
                             settings[name]["profile_half_life"])
            runs[name] = (run, fit(name, settings[name], run.data))
        served = Evaluation(slice_events, test_held, catalogue, content,
                            cf_shipped.half_life_days, shipped.profile_half_life)
        base = Evaluation(slice_events, test_held, catalogue, content,
                          cf_shipped.half_life_days, shipped.profile_half_life)
        served.with_tower(cf_shipped.tower)
        model = fit("EASE", {"l2": cf_shipped.l2}, served.data)
        combine = blend_of({"cf": shipped.collaborative, "content": shipped.content,
                            "popularity": shipped.popular})
        methods = {
            "popularity": (served, lambda u, r=served: np.log1p(r.counts).astype(float), None),
            "item-kNN": (runs["item-kNN"][0],
                         lambda u, r=runs["item-kNN"][0], m=runs["item-kNN"][1]:
                         r.cf_scores(m, u), None),
            "EASE": (runs["EASE"][0],
                     lambda u, r=runs["EASE"][0], m=runs["EASE"][1]: r.cf_scores(m, u), None),
            "content only": (served, lambda u, r=served: r.content.scores(r.profile(u))[r.order],
                             None),
            "blend, no cold place": (served, lambda u, r=served, m=model, f=combine:
                                     f(r.parts(u, m)), None),
            "blend + cold place, base vectors": (base, lambda u, r=base, m=model, f=combine:
                                                 f(r.parts(u, m)), policy),
            "blend + cold place (shipped)": (served, lambda u, r=served, m=model, f=combine:
                                             f(r.parts(u, m)), policy),
        }
        for name, (evaluation, score_of, cold) in methods.items():
            row = evaluation.evaluate(score_of, users, cold)
            if slice_name != "new users":
                row["cold"] = evaluation.cold_recall(score_of, cold_items, cold)
            if cold_items:  # the cold place's own ranking for the cold-place rows
                shelf_of = (score_of if cold is None else
                            lambda u, e=evaluation: e.cold_scores(u, policy.interests))
                row["shelf"] = evaluation.cold_recall(shelf_of, cold_items, shelf=True)
            rows.setdefault(slice_name, {})[name] = row
    print(f"\n=== recommendations on a real log: {args.log.name}, cut {args.cut} "
          f"({len(events)} events, "
          f"{len(catalogue)} items, {len(test_held)} users) ===")
    print("protocol: implicit positives (every event); per user the last 2 events by time "
          "held out (test), the 2 before them validation (settings, blend weights and the cold "
          "place's gate tuned there, never on test); candidates = catalogue minus the user's "
          f"training items; cold R@10 = recall of held-out events on items with <= {COLD_USERS} "
          f"training users; new users = {args.new_users} users cut to their last 2 training "
          f"events (fit and profile); new items = {NEW_ITEM_SHARE:.0%} of the catalogue at "
          "random with every training event on them removed (cold R@10: in the full list; "
          "shelf R@10: ranked among the new items only, by the row's own scores; for the "
          "cold-place rows by the cold place's scorer). Blend rows run the shipped "
          "RecSettings/CfSettings; the cold place = the list's last of 10 for an item nobody "
          "consumed, closest to the user's 5 newest items in the recommendation tower's space "
          f"(cosine >= {shipped.cold_min_similarity}; 'base vectors': the same without the "
          "tower, i.e. the content vectors); the tower is fitted on each slice's training "
          "sequences, as rec_train does.")
    print(f"tuned on validation: {json.dumps(settings)}")
    tuned = settings["blend"]
    same = (tuned["cf"] == "EASE" and tuned["weights"] == {
        "cf": shipped.collaborative, "content": shipped.content, "popularity": shipped.popular}
        and tuned["cold_min_similarity"] == shipped.cold_min_similarity
        and settings["EASE"]["l2"] == cf_shipped.l2
        and settings["EASE"]["profile_half_life"] == shipped.profile_half_life)
    print("shipped defaults (RecSettings, CfSettings) "
          + ("are what validation chose" if same else "DIFFER from what validation chose"))
    for slice_name, table in rows.items():
        print(f"-- {slice_name} --")
        print(f"{'method':<30} {'Recall@10':>9} {'NDCG@10':>8} {'coverage':>8} "
              f"{'cold R@10':>9} {'shelf R@10':>10} {'p99 ms*':>7}")
        for name, row in table.items():
            cold = f"{row['cold']['recall']:9.4f}" if "cold" in row else f"{'-':>9}"
            shelf = f"{row['shelf']['recall']:10.4f}" if "shelf" in row else f"{'-':>10}"
            print(f"{name:<30} {row['recall']:9.4f} {row['ndcg']:8.4f} "
                  f"{row['coverage']:8.3f} {cold} {shelf} {row['p99_ms']:7.1f}")
        first = next(iter(table.values()))
        if "cold" in first:
            print(f"held-out events on cold items: {first['cold']['items']}"
                  + (f"; shelf at random: {first['shelf']['random']:.4f}" if "shelf" in first
                     else ""))
    print("* p99 ms: scoring and ranking one user in memory (numpy), not the served path: "
          "bench.rec_served times /recommend/user's code on Elasticsearch")
    print(f"seconds: {time.monotonic() - started:.0f}")

if __name__ == "__main__":
    main()
