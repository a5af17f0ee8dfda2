"""The custom model learning from behaviour, one command: a BEIR set's train queries are
issued as traffic through the served API (``ragrec serve-api``: real ``/search`` and
``/events``), simulated users click by a click model, and ``ragrec train embedder --events``
learns from the log - bias-corrected (``--correction ipw``) and naive (``none``, every click
a positive) - beside the judged train queries (the upper bound). Every version is evaluated
on the test split (judged, every mode) and on held-out traffic (counterfactual, no labels),
and each round's label-free gate is held against the judged gate.

    bench/run feedback_loop                          # SciFact, position-based clicks
    bench/run feedback_loop --dataset DIR --click-model cascade --rounds 2

Protocol (printed with the results):

* Traffic: every train query is issued ``--sessions`` times a round by users drawn from a
  pool of ``--users``, at simulated times spread over ``--days`` days a round; each query
  first appears on a random day and returns on later days, so the queries first seen last
  are the held-out traffic (``ragrec train --holdout``). The API serves the alias with
  ``RAGREC_EXPLORE`` (``--explore``, default 0.05): that share of answers swaps two results.
* Clicks (seeded): ``pbm``, examination by rank 1-10 0.68, 0.61, 0.48, 0.34, 0.28, 0.20,
  0.11, 0.10, 0.08, 0.06, then a click with probability 1.0 on a judged-relevant result and
  0.1 otherwise; ``cascade``, the user reads from the top and clicks by the same
  probabilities, stopping at the first click.
* Rounds: after each round's traffic, the naive and corrected versions are trained from
  the base model on the whole log so far; the corrected one passes through both gates and,
  when the judged gate passes, serves the next round (its index copies the base's vectors).
* Ceiling: after the last round, a version trained on every judged-relevant result the
  logged answers showed (each a positive of weight 1, judged held-out queries picking the
  epoch: ``ragrec train --clicks``): what perfect clicks on that exposure could teach.
* Chat (where the set has ``rationales/``): after the last round every train claim with
  evidence is asked once through ``/chat`` on the live version; the asker marks each cited
  source ``helped`` with probability 0.8 when a sentence the answer cited from it is human
  evidence for the claim, else ``down`` with probability 0.5. ``ragrec train reranker
  --events`` then learns from the whole log (clicks and votes), and ``ragrec eval answers``
  scores the first ``--chat-claims`` test claims' extractive answers (sentence F1) with the
  live version's cosine selector and with that cross-encoder as the selector (shipped
  selection policies: no judged claims tune them); the held-out traffic's votes judge the
  two selectors without labels (pairwise accuracy, ``eval.chat_votes``).
* Gates: judged, the candidate's served-mode (hybrid RRF) nDCG@10 on the test split may drop
  at most 0.02 below the live version's; label-free (``counterfactual.verdict``, what
  ``kb_reindex`` applies), refused only when its counterfactual nDCG@10 on held-out traffic
  drops more than 0.02 below the live version's on the same queries both under the served
  spec and in the dense ranking.

Targets (issue 33): on SciFact, corrected-click dense nDCG@10 on test >= 0.747 (60 % of the
judged gain) and above naive clicks; never below the base; the gates agree every round.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench import ROOT, SCIFACT, cpu_flags
from bench.api_load import _wait
from bench.models_scifact import ragrec

EXAMINATION = (0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06)
CLICK_RELEVANT, CLICK_OTHER = 1.0, 0.1
CHAT_HELPED, CHAT_DOWN = 0.8, 0.5  # a vote on a cited source: evidence / not evidence
MODES = ("bm25", "dense", "hybrid", "hybrid-convex")
SERVED_MODE = "hybrid"  # the spec an index without a recorded one serves: hybrid, RRF
MARGIN = 0.02
START = datetime(2026, 1, 5, tzinfo=UTC)


def stem(doc_id: str) -> str:
    name = doc_id.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def clicks_for(docs: list[str], relevant: set[str], model: str, rng: random.Random
               ) -> list[int]:
    """0-based positions clicked in a shown list, by the click model."""
    clicked = []
    for position, doc in enumerate(docs[:len(EXAMINATION)]):
        attractive = CLICK_RELEVANT if stem(doc) in relevant else CLICK_OTHER
        if model == "pbm":
            if rng.random() < EXAMINATION[position] and rng.random() < attractive:
                clicked.append(position)
        elif rng.random() < attractive:  # cascade: read in order, stop at the first click
            clicked.append(position)
            break
    return clicked


class Api:
    """``ragrec serve-api`` on a free loopback port, serving ``alias``."""

    def __init__(self, alias: str, explore: float, registry: Path):
        from ragrec.dev.es_node.node import free_port

        self.port = free_port()
        env = {**os.environ, "RAGREC_EXPLORE": str(explore),
               "RAGREC_REGISTRY": f"file://{registry}"}
        env.pop("RAGREC_API_TOKEN", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ragrec.cli", "serve-api", "--index", alias, "--port",
             str(self.port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        _wait(f"{self.url}/health", self.process, "search API")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def traffic(api: Api, queries: dict[str, str], qrels: dict, args, round_number: int,
            first_day: dict[str, int], exposed: set) -> dict:
    """One round: every query ``args.sessions`` times, clicks by the model, events posted."""
    rng = random.Random(args.seed * 1000 + round_number)
    days = args.days
    offset = (round_number - 1) * days
    plan = []
    for qid in sorted(queries):
        for _session in range(args.sessions):
            low = first_day[qid] if round_number == 1 else 0
            day = offset + rng.randint(low, days - 1)
            if _session == 0 and round_number == 1:
                day = offset + first_day[qid]  # the query's first appearance
            stamp = START + timedelta(days=day, seconds=rng.randrange(86_400))
            plan.append((stamp, qid, f"user-{rng.randrange(args.users)}",
                         random.Random(rng.random())))
    plan.sort()
    totals = {"sessions": 0, "impressions": 0, "clicks": 0, "explored": 0}

    def session(http, item) -> list[dict]:
        stamp, qid, user, own_rng = item
        response = http.post(f"{api.url}/search", json={"query": queries[qid], "k": 10,
                                                        "highlight": False})
        response.raise_for_status()
        answer = response.json()
        docs = [h["doc_id"] for h in answer["hits"]]
        relevant = {d for d, g in qrels.get(qid, {}).items() if g > 0}
        clicked = clicks_for(docs, relevant, args.click_model, own_rng)
        exposed.update((qid, stem(d)) for d in docs if stem(d) in relevant)
        common = {"user_id": user, "query": queries[qid], "surface": "search",
                  "trace_id": answer["trace_id"], "ts": stamp.isoformat()}
        events = [{**common, "doc_id": d, "type": "impression", "position": p}
                  for p, d in enumerate(docs)]
        events += [{**common, "doc_id": docs[p], "type": "click", "position": p,
                    "ts": (stamp + timedelta(seconds=5 + p)).isoformat()} for p in clicked]
        totals["sessions"] += 1
        totals["impressions"] += len(docs)
        totals["clicks"] += len(clicked)
        totals["explored"] += "explore" in answer
        return events

    totals["seconds"] = post_all(api, plan, session, args.clients, f"round {round_number}",
                                 "sessions", 1000)
    return totals


def post_all(api: Api, plan: list, one, clients: int, label: str, unit: str,
             every: int) -> float:
    """``one(http, item) -> events`` for every item of ``plan`` (``clients`` at a time), the
    events posted to ``/events`` in batches, progress every ``every`` items; the seconds."""
    started = time.monotonic()
    pending: list[dict] = []
    with httpx.Client(timeout=300) as http, ThreadPoolExecutor(clients) as pool:
        for number, events in enumerate(pool.map(lambda item: one(http, item), plan),
                                        start=1):
            pending += events
            if pending and (len(pending) >= 400 or number == len(plan)):
                http.post(f"{api.url}/events", json={"events": pending}).raise_for_status()
                pending = []
            if number % every == 0:
                rate = number / (time.monotonic() - started)
                print(f"  {label}: {number}/{len(plan)} {unit} ({rate:.1f}/s, ETA "
                      f"{(len(plan) - number) / rate / 60:.1f} min)", file=sys.stderr,
                      flush=True)
    return round(time.monotonic() - started, 1)


def evidence_sentences(root: Path, split: str = "train") -> tuple[dict, dict]:
    """(claim id -> claim, claim id -> {doc id: its human evidence sentences}) of a set's
    ``rationales/`` (read as ``ragrec eval answers`` reads them), for the claims with
    evidence."""
    from ragrec.eval.answers import Rationales

    rationales = Rationales(root)
    sentences = rationales.sentences()
    claims, evidence = {}, {}
    for claim in rationales.claims(split):
        gold = {doc: {_words(sentences[doc][i]) for i in numbers}
                for doc, numbers in claim.evidence.items() if doc in sentences}
        if gold:
            claims[claim.id], evidence[claim.id] = claim.text, gold
    return claims, evidence


def _words(text: str) -> str:
    return " ".join(text.split()).lower()


def chat_traffic(api: Api, claims: dict[str, str], evidence: dict, args) -> dict:
    """Every claim asked once through ``/chat``; the asker marks each cited source
    ``helped`` with probability ``CHAT_HELPED`` when a sentence the answer cited from it is
    human evidence for the claim, else ``down`` with probability ``CHAT_DOWN``."""
    rng = random.Random(args.seed * 7919)
    plan = [(qid, random.Random(rng.random())) for qid in sorted(claims)]
    totals = {"turns": 0, "cited_sources": 0, "evidence_sources": 0, "helped": 0, "down": 0}

    def turn(http, item) -> list[dict]:
        qid, own_rng = item
        response = http.post(f"{api.url}/chat", json={"question": claims[qid]})
        response.raise_for_status()
        answer = response.json()
        passages = {p["number"]: p for p in answer["passages"]}
        cited: dict[str, set[str]] = {}
        for sentence in answer["sentences"]:
            for c in sentence["citations"]:
                text = passages[c["number"]]["text"][c["start"]:c["end"]]
                cited.setdefault(c["doc_id"], set()).add(_words(text))
        common = {"user_id": f"asker-{qid}", "query": claims[qid], "surface": "chat",
                  "conversation_id": answer["conversation_id"], "turn": answer["turn"],
                  "trace_id": answer["trace_id"]}
        events = []
        for doc, texts in sorted(cited.items()):
            gold = evidence[qid].get(stem(doc), set())
            helpful = any(t in g or g in t for t in texts for g in gold)
            totals["evidence_sources"] += helpful
            if helpful and own_rng.random() < CHAT_HELPED:
                events.append({**common, "doc_id": doc, "type": "helped"})
            elif not helpful and own_rng.random() < CHAT_DOWN:
                events.append({**common, "doc_id": doc, "type": "down"})
        totals["turns"] += 1
        totals["cited_sources"] += len(cited)
        for event in events:
            totals[event["type"]] += 1
        return events

    totals["seconds"] = post_all(api, plan, turn, args.clients, "chat", "turns", 200)
    return totals


def chat_arm(api: Api, args, alias: str, live_uri: str, work: Path, timings: dict,
             train_ids: set[str]) -> dict:
    """Chat turns with votes, the cross-encoder trained from the log (``train reranker
    --events``: the clicks and the chat's votes), and the extractive answers of the live
    version's cosine selector and of that cross-encoder as selector, on test claims."""
    claims, evidence = evidence_sentences(args.dataset / "rationales", "train")
    claims = {q: c for q, c in claims.items() if q in train_ids}
    stats = chat_traffic(api, claims, evidence, args)
    timings["chat traffic"] = stats["seconds"]
    print(f"chat traffic: {json.dumps(stats)}", flush=True)
    out = work / "chat-reranker"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    budget = ["--max-minutes", str(args.max_minutes)] if args.max_minutes else []
    summary, timings["train chat reranker"] = ragrec(
        "train", "reranker", "--index", alias, "--events", alias, "--out", str(out),
        "--name", f"{alias}-chat", "--holdout", str(args.holdout), "--no-eval", *budget)
    print(f"chat reranker: {json.dumps(summary)}", flush=True)
    report, timings["eval answers"] = ragrec(
        "eval", "answers", "--dataset", str(args.dataset), "--index", alias, "--model",
        live_uri, "--reranker", str(out), "--no-rerank", "--tune-claims", "0",
        "--limit", str(args.chat_claims), "--report-dir", str(args.report_dir / "answers"))
    return {"traffic": stats, "train": summary, "answers": report}


def evaluate(version: str, args, alias: str) -> tuple[dict, float]:
    return ragrec("eval", "--dataset", str(args.dataset), "--index", alias, "--model", version,
                  "--events", alias, "--holdout", str(args.holdout),
                  "--tune-queries", str(args.holdout), "--report-dir", str(args.report_dir),
                  *[part for mode in MODES for part in ("--mode", mode)])


def train(name: str, args, alias: str, out: Path, *source: str) -> tuple[dict, float]:
    if out.exists():
        import shutil

        shutil.rmtree(out)
    budget = ["--max-minutes", str(args.max_minutes)] if args.max_minutes else []
    return ragrec("train", "embedder", "--index", alias, "--out", str(out), "--name", name,
                  "--holdout", str(args.holdout), "--no-eval", *budget, *source)


def gates(candidate: dict, live: dict) -> dict:
    """The judged gate (test split, served mode) and the label-free one (held-out traffic,
    ``counterfactual.verdict``: the rule ``kb_reindex`` applies) on the same candidate."""
    from ragrec.eval.counterfactual import verdict

    judged_drop = live["metrics"][SERVED_MODE]["ndcg@10"] \
        - candidate["metrics"][SERVED_MODE]["ndcg@10"]
    traffic = verdict(candidate["traffic"]["per_query"], live["traffic"]["per_query"], MARGIN)
    judged = judged_drop <= MARGIN
    return {"judged": judged, "judged_gain": round(-judged_drop, 4),
            "label_free": traffic["passed"], "traffic_gain": traffic["gains"]["served"],
            "traffic_dense_gain": traffic["gains"]["dense"],
            "agree": judged == traffic["passed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(SCIFACT))
    parser.add_argument("--index", default=None, help="served alias (default "
                                                      "bench-<folder>-fl)")
    parser.add_argument("--click-model", choices=["pbm", "cascade"], default="pbm")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=6, help="per train query a round")
    parser.add_argument("--days", type=int, default=14, help="simulated days a round")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--explore", type=float, default=0.05)
    parser.add_argument("--holdout", type=int, default=150)
    parser.add_argument("--clients", type=int, default=4, help="concurrent API callers")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="each training job's budget (default: ragrec train's)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--skip-judged", action="store_true",
                        help="no judged-queries version (the upper bound)")
    parser.add_argument("--no-chat", action="store_true",
                        help="no chat turns (default: on where the set has rationales/)")
    parser.add_argument("--chat-claims", type=int, default=100,
                        help="test claims the answers are scored on")
    args = parser.parse_args()
    args.dataset = Path(args.dataset).resolve()
    name = args.dataset.name.lower()
    alias = args.index or f"bench-{name}-fl"
    work = Path(f"/var/tmp/ragrec-feedback/{name}-{args.click_model}")
    work.mkdir(parents=True, exist_ok=True)
    args.report_dir = work / "reports"
    registry = work / "registry"

    from ragrec.es_client import connect
    from ragrec.eval.datasets import BeirDataset
    from ragrec.feedback.sessions import events_index

    dataset = BeirDataset(args.dataset)
    all_queries, train_qrels = dataset.queries(), dataset.qrels("train")
    queries = {q: all_queries[q] for q in train_qrels if q in all_queries}
    client = connect()
    client.indices.delete(index=events_index(alias), ignore_unavailable=True)
    print(f"# feedback_loop on {args.dataset.name}: {len(queries)} train queries as traffic, "
          f"{args.sessions} sessions each a round, {args.rounds} round(s), click model "
          f"{args.click_model}, explore {args.explore}, {args.users} users, {args.days} days a "
          f"round, holdout {args.holdout}; {os.cpu_count()} cores, CPU flags: {cpu_flags()}",
          flush=True)
    print("# " + " ".join(line.strip() for line in __doc__.split("Protocol")[1]
                          .split("Targets")[0].splitlines() if line.strip()), flush=True)
    timings: dict[str, float] = {}
    # The base index first (built once; later runs find it, and a run that left another
    # version live gets the base's vectors copied back): what round 1 serves.
    _, timings["index base"] = ragrec(
        "eval", "--dataset", str(args.dataset), "--index", alias, "--model", "base",
        "--mode", "bm25", "--report-dir", str(args.report_dir))
    versions: dict[str, dict] = {}
    judged = None
    if not args.skip_judged:
        out = work / "judged"
        summary, timings["train judged"] = train(f"{name}-judged", args, alias, out,
                                                 "--dataset", str(args.dataset))
        judged = str(out)
        print(f"judged: {json.dumps(summary)}", flush=True)

    rng = random.Random(args.seed)
    first_day = {q: rng.randrange(args.days) for q in sorted(queries)}
    live_uri, rows, round_gates, volume = "base", {}, [], []
    exposed: set[tuple[str, str]] = set()
    api = Api(alias, args.explore, registry)
    try:
        for round_number in range(1, args.rounds + 1):
            stats = traffic(api, queries, train_qrels, args, round_number, first_day, exposed)
            volume.append(stats)
            print(f"round {round_number} traffic: {json.dumps(stats)}", flush=True)
            live, timings[f"r{round_number} eval live"] = evaluate(live_uri, args, alias)
            if round_number == 1:
                versions["base"] = live
            trained = {}
            for arm, correction in (("naive", "none"), ("corrected", "ipw")):
                out = work / f"r{round_number}-{arm}"
                summary, timings[f"r{round_number} train {arm}"] = train(
                    f"{name}-{arm}", args, alias, out, "--events", alias,
                    "--correction", correction)
                print(f"r{round_number} {arm}: {json.dumps(summary)}", flush=True)
                trained[arm] = out
            reports = {}
            for arm in ("naive", "corrected"):  # corrected last: its index is left live
                reports[arm], timings[f"r{round_number} eval {arm}"] = evaluate(
                    str(trained[arm]), args, alias)
            verdict = {arm: gates(reports[arm], live) for arm in reports}
            round_gates.append(verdict)
            print(f"round {round_number} gates: {json.dumps(verdict)}", flush=True)
            rows[round_number] = reports
            if verdict["corrected"]["judged"]:
                subprocess.run([sys.executable, "-m", "ragrec.cli", "models", "register",
                                str(trained["corrected"]), "--registry", f"file://{registry}",
                                "--no-stage"], cwd=ROOT, check=True,
                               stdout=subprocess.DEVNULL)
                live_uri = str(trained["corrected"])  # its index is live: it serves next
            else:  # back to the live version for the next round
                evaluate(live_uri, args, alias)
        chat = None
        if not args.no_chat and (args.dataset / "rationales" / "sentences.jsonl").exists():
            chat = chat_arm(api, args, alias, live_uri, work, timings, set(queries))
    finally:
        api.close()
    from ragrec.eval.datasets import tuning_sample

    picks_epoch = set(tuning_sample(train_qrels, args.holdout))  # judged held-out queries
    oracle_pairs = work / "shown-relevant.jsonl"
    oracle_pairs.write_text("".join(json.dumps({"query": queries[q], "doc_id": d, "label": 1})
                                    + "\n" for q, d in sorted(exposed)
                                    if q not in picks_epoch))
    summary, timings["train ceiling"] = train(f"{name}-ceiling", args, alias, work / "ceiling",
                                              "--clicks", str(oracle_pairs), "--dataset",
                                              str(args.dataset))
    print(f"ceiling ({len(exposed)} shown relevant pairs): {json.dumps(summary)}", flush=True)
    versions["ceiling"], timings["eval ceiling"] = evaluate(str(work / "ceiling"), args, alias)
    if judged:
        versions["judged"], timings["eval judged"] = evaluate(judged, args, alias)

    print(f"\n=== {args.dataset.name} test split nDCG@10 (judged), every mode; held-out "
          f"traffic: counterfactual nDCG@10 of the served mode [95 % interval] ===")
    header = f"{'version':<22}" + "".join(f"{m:>14}" for m in MODES) + "   traffic (served)"
    print(header)

    def row(label: str, report: dict) -> None:
        cells = "".join(f"{report['metrics'][m]['ndcg@10']:>14.4f}" for m in MODES)
        traffic_cell = ""
        if "traffic" in report:
            served = report["traffic"]["metrics"]["served"]
            traffic_cell = f"   {served['ndcg@10']:.4f} [{served['ci95'][0]:.4f}, " \
                           f"{served['ci95'][1]:.4f}]"
        print(f"{label:<22}{cells}{traffic_cell}")

    row("base", versions["base"])
    for number, reports in rows.items():
        for arm, report in reports.items():
            row(f"round {number} {arm}", report)
    row("ceiling (shown relevant)", versions["ceiling"])
    if "judged" in versions:
        row("judged (upper bound)", versions["judged"])
    base_dense = versions["base"]["metrics"]["dense"]["ndcg@10"]
    if "judged" in versions:
        top = versions["judged"]["metrics"]["dense"]["ndcg@10"]
        last = rows[max(rows)]["corrected"]["metrics"]["dense"]["ndcg@10"]
        share = (last - base_dense) / (top - base_dense) if top != base_dense else 0.0
        ceiling = versions["ceiling"]["metrics"]["dense"]["ndcg@10"]
        print(f"dense: corrected clicks recover {share:.0%} of the judged gain "
              f"({base_dense:.4f} -> {last:.4f}; judged {top:.4f}); perfect clicks on what "
              f"was shown: {ceiling:.4f} "
              f"({(ceiling - base_dense) / (top - base_dense):.0%})")
    for number, verdict in enumerate(round_gates, start=1):
        for arm, gate in verdict.items():
            print(f"round {number} {arm}: judged gate {'pass' if gate['judged'] else 'REFUSE'}"
                  f" ({gate['judged_gain']:+.4f}), label-free "
                  f"{'pass' if gate['label_free'] else 'REFUSE'} "
                  f"(served {gate['traffic_gain']['gain']:+.4f} {gate['traffic_gain']['ci95']}, "
                  f"dense {gate['traffic_dense_gain']['gain']:+.4f}): "
                  f"{'agree' if gate['agree'] else 'DISAGREE'}")
    if chat is not None:
        answers = chat["answers"]
        print(f"\n=== answers: {answers['protocol']}; first {args.chat_claims} test claims, "
              f"shipped selection policy ===")
        for label, entry in answers["systems"].items():
            m = entry["metrics"]
            print(f"{label[:60]:<60} P {m['sentence_precision']:.4f} R "
                  f"{m['sentence_recall']:.4f} F1 {m['sentence_f1']:.4f}")
        held = chat["train"]["metrics"].get("chat_held_out")
        if held:
            print(f"held-out chat votes ({held['cosine']['questions']} questions, "
                  f"{held['cosine']['pairs']} pairs), pairwise accuracy: cosine "
                  f"{held['cosine']['accuracy']}, trained cross-encoder "
                  f"{held['cross_encoder']['accuracy']}")
        print(f"chat traffic: {json.dumps(chat['traffic'])}")
    for number, stats in enumerate(volume, start=1):
        print(f"round {number} traffic: {json.dumps(stats)}")
    for step, seconds in timings.items():
        print(f"{step:<26} {seconds / 60:6.1f} min")


if __name__ == "__main__":
    main()
