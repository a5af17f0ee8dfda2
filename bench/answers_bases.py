"""Answers by base encoder, one command: a set's corpus indexed once per base encoder, then
``ragrec eval answers`` scores each base's extractive answers (cosine sentence selector)
side by side in one run. By default CMRC 2018 (Chinese; ``RAGREC_LANGUAGE=zh``: the ``cjk``
analyzer for BM25) against its gold answer spans; ``--dataset`` takes any BEIR-style folder
with ``answers/`` (gold spans) or ``rationales/`` (evidence sentences, e.g. SciFact).

    bench/run answers_cmrc                               # ~20 min on 2 CPU cores
    bench/run answers_cmrc --bases bge-small-zh-v15-q,minilm --limit 500
    bench/run answers_cmrc --dataset ../shared/data/scifact --language en \
        --bases bge-small-en-v15-q,minilm                # sentence F1 vs SciFact's evidence

Protocol (spans): CMRC 2018 test questions (its public dev set; 3,219), open retrieval over
all 1,104 paragraphs under the index's served spec (hybrid), top 5 passages over
min_support, extractive cosine sentence selection under the served policy (nothing tuned: no
train question is read); a gold span matches when it is inside the sentence once both are
lower-cased and stripped of spaces and punctuation. Figures: the answer contains a gold span
(any cited sentence), the best sentence does (exact match), the best sentence's character
F1 (CMRC's longest-common-substring F1), the gold paragraph cited. Target: the answer
contains a gold span for >= 70 % of questions with the Chinese base, clearly more than with
MiniLM. Protocol (rationales): ``ragrec eval answers``'s (policy tuned on held-out train
claims; sentence precision, recall and F1 against the evidence sentences).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import ROOT, SHARED_DATA, cpu_flags

CMRC = SHARED_DATA / "cmrc2018"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(CMRC))
    parser.add_argument("--bases", default="bge-small-zh-v15-q,minilm",
                        help="catalogue entries (ragrec models bases), comma-separated")
    parser.add_argument("--limit", type=int, default=None, help="first N test questions")
    parser.add_argument("--language", choices=("zh", "en", "auto"), default="zh",
                        help="the index language every base's index is built for")
    args = parser.parse_args()
    env = {**os.environ, "RAGREC_LANGUAGE": args.language}
    folder = Path(args.dataset).resolve().name.lower()
    rows = {}
    for name in args.bases.split(","):
        model = "base" if name == "minilm" else f"base:{name}"
        if name != "minilm":
            subprocess.run([sys.executable, "-m", "ragrec.cli", "models", "install-base",
                            name], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        command = [sys.executable, "-m", "ragrec.cli", "eval", "answers", "--dataset",
                   args.dataset, "--index", f"bench-{folder}-{name}", "--model", model,
                   "--report-dir", str(ROOT / "eval-reports" / f"answers-{folder}" / name),
                   "--json"]
        if args.limit:
            command += ["--limit", str(args.limit)]
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise SystemExit(f"ragrec eval answers with {name} failed ({result.returncode})")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        entry = next(iter(report["systems"].values()))
        rows[name] = (entry["metrics"], time.perf_counter() - started)
        print(f"{name}: {json.dumps(entry['metrics'])}", flush=True)
    from ragrec.eval.answers import summary_cells, summary_heading

    gold = report["gold"]
    first = next(iter(rows.values()))[0]
    print(f"\n=== {folder} {report['split']} answers by base encoder "
          f"({first.get('questions', first.get('claims'))} questions) ===")
    print(f"protocol: {report['protocol']}; index language {args.language} for every base")
    print(f"machine: {os.cpu_count()} cores, CPU flags: {cpu_flags()}")
    print(f"{'base':<22}{summary_heading(gold)}{'min':>8}")
    for name, (metrics, seconds) in rows.items():
        print(f"{name:<22}{summary_cells(metrics, gold)}{seconds / 60:8.1f}")
    if report["gold"] == "answer spans":
        print("target (CMRC): contains >= 0.70 with the Chinese base, clearly above MiniLM")


if __name__ == "__main__":
    main()
