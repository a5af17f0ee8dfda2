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
from pathlib import Path

import numpy as np

from bench.rec_offline import scores  # Recall@k, NDCG@k: one definition for both logs

ROOT = Path(__file__).resolve().parents[1]
MOVIELENS = ROOT.parent / "shared" / "data" / "movielens-100k"
K = 10
COLD_USERS = 3


def load(folder: Path):
    from ragrec.recs.interactions import Event

    lines = (folder / "events.tsv").read_text().splitlines()[1:]
    events = [Event(u, i, float(t)) for u, i, t in (line.split("\t")[:3] for line in lines)]
    items = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()
             if line.strip()]
    return events, items


def split_last(events, count: int = 2):
    """(earlier, held out) per user, by time (file order breaks ties)."""
    per_user: dict[str, list] = {}
    for event in sorted(events, key=lambda e: e.ts):
        per_user.setdefault(event.user, []).append(event)
    earlier, held = [], {}
    for user, rows in per_user.items():
        if len(rows) <= count:
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

    def profile(self, user: str) -> dict[str, float]:
        return self.data.profile(user, self.profile_half_life)

    def cf_scores(self, neighbours, user: str) -> np.ndarray:
        scores = np.zeros(len(self.catalogue))
        for item, value in neighbours.scores(self.profile(user)).items():
            scores[self.data.item_index[item]] = value
        return scores

    def rank(self, user: str, scores: np.ndarray) -> list[str]:
        seen = self.data.history(user)
        order = np.argsort(-scores, kind="stable")
        ranked = []
        for column in order:
            item = self.catalogue[column]
            if item not in seen:
                ranked.append(item)
                if len(ranked) == K:
                    break
        return ranked

    def parts(self, user: str, neighbours) -> dict[str, np.ndarray]:
        history = self.profile(user)
        return {"cf": self.cf_scores(neighbours, user),
                "content": self.content.scores(history)[self.order],
                "popularity": np.log1p(self.counts)}

    def evaluate(self, score_of, users=None) -> dict:
        users = list(self.held) if users is None else users
        recall, ndcg, shown, seconds = [], [], set(), []
        for user in users:
            started = time.perf_counter()
            ranked = self.rank(user, score_of(user))
            seconds.append(time.perf_counter() - started)
            r, n = scores(ranked, self.held[user], K)
            recall.append(r)
            ndcg.append(n)
            shown.update(ranked)
        seconds.sort()
        return {"recall": float(np.mean(recall)), "ndcg": float(np.mean(ndcg)),
                "coverage": len(shown) / len(self.catalogue), "users": len(users),
                "p99_ms": 1000 * seconds[int(0.99 * (len(seconds) - 1))]}

    def cold_recall(self, score_of, max_users: int = COLD_USERS) -> dict:
        """Recall@10 of the held-out items that had at most ``max_users`` training users."""
        hits, total = 0, 0
        for user, held in self.held.items():
            cold = {i for i in held if self.counts[self.data.item_index[i]] <= max_users}
            if not cold:
                continue
            ranked = set(self.rank(user, score_of(user)))
            hits += len(cold & ranked)
            total += len(cold)
        return {"recall": hits / total if total else 0.0, "items": total}


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
    settings["blend"] = {"cf": cf_name, "weights": top[1]}
    settings["validation_ndcg"] = {**{n: round(v[0], 4) for n, v in best.items()},
                                   "blend": round(top[0], 4)}
    return settings


def fit(name: str, key: dict, data):
    from ragrec.recs import neighbours as nb

    if name == "EASE":
        return nb.ease(data.matrix, data.items, l2=key["l2"])
    return nb.cooccurrence(data.matrix, data.items, shrink=key["shrink"], alpha=key["alpha"])


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
    args = parser.parse_args()
    if not (args.log / "events.tsv").is_file():
        raise SystemExit(f"needs {args.log}/events.tsv and items.jsonl")
    say = print
    started = time.monotonic()
    events, items = load(args.log)
    catalogue = list(dict.fromkeys(str(i["id"]) for i in items))
    known = set(catalogue)
    events = [e for e in events if e.item in known]
    train_events, test_held = split_last(events)
    fit_events, validation_held = split_last(train_events)
    content = Content(items, catalogue)
    settings = tune(fit_events, validation_held, catalogue, content, say)
    rows = {}
    for slice_name, slice_events, users in (
            ("all users", train_events, None),
            ("new users", None, None)):
        if slice_name == "new users":
            sample = random.Random(args.seed).sample(sorted(test_held), args.new_users)
            slice_events, users = new_user_events(train_events, test_held, sample), sample
        runs = {}
        for name in ("item-kNN", "EASE"):
            run = Evaluation(slice_events, test_held, catalogue, content,
                             settings[name]["half_life_days"],
                             settings[name]["profile_half_life"])
            runs[name] = (run, fit(name, settings[name], run.data))
        cf_name = settings["blend"]["cf"]
        run, model = runs[cf_name]
        combine = blend_of(settings["blend"]["weights"])
        methods = {
            "popularity": (run, lambda u, r=run: np.log1p(r.counts).astype(float)),
            "item-kNN": (runs["item-kNN"][0],
                         lambda u, r=runs["item-kNN"][0], m=runs["item-kNN"][1]:
                         r.cf_scores(m, u)),
            "EASE": (runs["EASE"][0],
                     lambda u, r=runs["EASE"][0], m=runs["EASE"][1]: r.cf_scores(m, u)),
            "content only": (run, lambda u, r=run: r.content.scores(r.profile(u))[r.order]),
            f"blend ({cf_name} + content + popularity)":
                (run, lambda u, r=run, m=model, c=combine: c(r.parts(u, m))),
        }
        for name, (evaluation, score_of) in methods.items():
            row = evaluation.evaluate(score_of, users)
            if slice_name == "all users":
                row["cold"] = evaluation.cold_recall(score_of)
            rows.setdefault(slice_name, {})[name] = row
    print(f"\n=== recommendations on a real log: {args.log.name} ({len(events)} events, "
          f"{len(catalogue)} items, {len(test_held)} users) ===")
    print("protocol: implicit positives (every event); per user the last 2 events by time "
          "held out (test), the 2 before them validation (settings and blend weights tuned "
          "there, never on test); candidates = catalogue minus the user's training items; "
          f"cold items = test items with <= {COLD_USERS} training users; new users = "
          f"{args.new_users} users cut to their last 2 training events (fit and profile).")
    print(f"tuned on validation: {json.dumps(settings)}")
    for slice_name, table in rows.items():
        print(f"-- {slice_name} --")
        print(f"{'method':<44} {'Recall@10':>9} {'NDCG@10':>8} {'coverage':>8} "
              f"{'cold R@10':>9} {'p99 ms':>7}")
        for name, row in table.items():
            cold = f"{row['cold']['recall']:9.4f}" if "cold" in row else f"{'-':>9}"
            print(f"{name:<44} {row['recall']:9.4f} {row['ndcg']:8.4f} "
                  f"{row['coverage']:8.3f} {cold} {row['p99_ms']:7.1f}")
    cold_items = next(iter(rows["all users"].values()))["cold"]["items"]
    print(f"cold test items: {cold_items}; seconds: {time.monotonic() - started:.0f}")


if __name__ == "__main__":
    main()
