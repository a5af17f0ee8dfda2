"""The model lifecycle on SciFact, one command: fine-tune the query encoder (against the base
index's document vectors) and the reranker (hard negatives from that index) on the train
split, then ``ragrec eval`` the base model and the fine-tuned version on the test split in
every mode, and print one table.

    bench/run models_scifact            # ~1-1.5 h on 2 CPU cores (rerank eval is most)
    bench/run models_scifact --dataset /data/nfcorpus   # any BEIR folder with a train split
    bench/run models_scifact --base bge-small-en-v15-q  # from a catalogue base; MiniLM beside

Everything goes through the CLI a user runs (``ragrec train``, ``ragrec eval``); fusion and
rerank weights are tuned on 150 train queries that training holds out (``--holdout``). The
reranker (``ragrec train reranker`` defaults: listwise, 2 epochs, lr 5e-5) starts from the
base encoder and mines its negatives from the base index the embedder step already built,
so it needs no index of its own; it is written into the same version directory as the
fine-tuned query encoder. Both training jobs run with ``ragrec train``'s defaults, budget included
(``--max-minutes`` here overrides it), and ``--no-eval``: the eval step after them reports.
Target: fine-tuned hybrid+rerank nDCG@10 >= 0.77 (BEIR anchors: BM25 0.665,
all-MiniLM-L6-v2 0.645). ``--dataset`` runs the same commands on another BEIR-style folder
(indices ``bench-<folder name>-base`` and ``-ft``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import ROOT, SCIFACT, cpu_flags


def ragrec(*args: str) -> tuple[dict, float]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", *args, "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"ragrec {' '.join(args)} failed ({result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(SCIFACT),
                        help="BEIR folder (corpus, queries, qrels/train.tsv and test.tsv)")
    parser.add_argument("--out", default=None,
                        help="version directory (default /var/tmp/ragrec-models/<name>-ft)")
    parser.add_argument("--max-minutes", default=None,
                        help="each training job's budget (default: ragrec train's)")
    parser.add_argument("--report-dir", default=None,
                        help="default eval-reports/<dataset folder name>")
    parser.add_argument("--rerank-top", default=None,
                        help="chunks the cross-encoder re-scores (default: ragrec eval's)")
    parser.add_argument("--base", default="minilm",
                        help="the catalogue base encoder to start from (ragrec models bases); "
                             "another than minilm also evaluates MiniLM in the same run")
    parser.add_argument("--tune-queries", default="150",
                        help="train queries held out of training and used for fusion/rerank "
                             "tuning")
    args = parser.parse_args()
    dataset = Path(args.dataset).resolve()
    name = dataset.name.lower()
    base_uri = "base" if args.base == "minilm" else f"base:{args.base}"
    if args.base != "minilm":
        subprocess.run([sys.executable, "-m", "ragrec.cli", "models", "install-base",
                        args.base], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    tag = "" if args.base == "minilm" else f"-{args.base}"
    out = Path(args.out or f"/var/tmp/ragrec-models/{name}{tag}-ft")
    report_dir = args.report_dir or str(ROOT / "eval-reports" / name)
    if out.exists():  # a fresh version: training never starts from a previous run's output
        if not (out / "ragrec-model.json").is_file() and any(out.iterdir()):
            raise SystemExit(f"{out} exists and is not a ragrec model version; pick --out")
        shutil.rmtree(out)
    data = ["--dataset", str(dataset)]
    tune = ["--tune-queries", args.tune_queries] + (
        ["--rerank-top", args.rerank_top] if args.rerank_top else [])
    base_index, tuned_index = f"bench-{name}{tag}-base", f"bench-{name}{tag}-ft"
    budget = ["--max-minutes", args.max_minutes] if args.max_minutes else []
    timings = {}
    embedder, timings["train embedder"] = ragrec(
        "train", "embedder", *data, "--base", base_uri, "--out", str(out),
        "--index", base_index, "--name", f"{name}-{args.base}", "--holdout",
        args.tune_queries, "--no-eval", *budget)
    print(f"embedder: {json.dumps(embedder)}", flush=True)
    reranker, timings["train reranker"] = ragrec(
        "train", "reranker", *data, "--base", base_uri, "--out", str(out),
        "--index", base_index, "--holdout", args.tune_queries, "--no-eval", *budget)
    print(f"reranker: {json.dumps(reranker)}", flush=True)
    base, timings["eval base"] = ragrec(
        "eval", *data, "--index", base_index, "--model", base_uri, "--reranker", str(out),
        "--report-dir", report_dir, *tune)
    minilm = None
    if args.base != "minilm":  # the bundled base beside it, same run, same protocol
        minilm, timings["eval minilm"] = ragrec(
            "eval", *data, "--index", f"bench-{name}-base", "--model", "base",
            "--report-dir", report_dir, *tune)
    tuned, timings["eval fine-tuned"] = ragrec(
        "eval", *data, "--index", tuned_index, "--model", str(out),
        "--report-dir", report_dir, *tune)

    print(f"\n=== {dataset.name} test split, nDCG@10 / Recall@100 / MRR@10 ===")
    print(f"machine: {os.cpu_count()} cores, CPU flags: {cpu_flags()}")
    reports = ([minilm] if minilm else []) + [base, tuned]
    heads = (["minilm"] if minilm else []) + [f"base {args.base}",
                                              "fine-tuned " + tuned["model_version"]]
    print(f"{'mode':<15} " + "   ".join(f"{h[:26]:>26}" for h in heads))
    for mode in tuned["metrics"]:
        cells = []
        for report in reports:
            m = report["metrics"].get(mode)
            cells.append(f"{m['ndcg@10']:.4f} / {m['recall@100']:.4f} / {m['mrr@10']:.4f}"
                         if m else "-")
        print(f"{mode:<15} " + "   ".join(f"{c:>26}" for c in cells))
    if minilm:
        gain = base["metrics"]["dense"]["ndcg@10"] - minilm["metrics"]["dense"]["ndcg@10"]
        print(f"dense nDCG@10, {args.base} - minilm: {gain:+.4f} (target >= +0.04)")
    print("(base encoder's hybrid+rerank uses the fine-tuned reranker; base has none)")
    print(f"tuned on train: base {base['tuned']} | fine-tuned {tuned['tuned']}")
    for step, seconds in timings.items():
        print(f"{step:<16} {seconds / 60:6.1f} min")
    for kind, summary in (("embedder", embedder), ("reranker", reranker)):
        result = summary["result"]
        print(f"  {kind} phases (s): {result['phases_seconds']}, precision "
              f"{result['precision']}, budget {result['budget']}, sample {result['sample']}")
    final = tuned["metrics"].get("hybrid+rerank", {}).get("ndcg@10", 0.0)
    print(f"fine-tuned hybrid+rerank nDCG@10 {final:.4f}"
          + (" (target >= 0.77)" if dataset == SCIFACT.resolve() else ""))


if __name__ == "__main__":
    main()
