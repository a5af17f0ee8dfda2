"""Chinese answers by base encoder, one command: CMRC 2018's paragraphs indexed as a Chinese
index (``RAGREC_LANGUAGE=zh``: the ``cjk`` analyzer for BM25) once per base encoder, then
``ragrec eval answers`` scores the extractive answer of each question against its gold
answer spans, side by side in one run.

    bench/run answers_cmrc                               # ~30 min on 2 CPU cores
    bench/run answers_cmrc --bases bge-small-zh-v15-q,minilm --limit 500

Protocol: CMRC 2018 test questions (its public dev set; 3,219), open retrieval over all
1,104 paragraphs under the index's served spec (hybrid), top 5 passages over min_support,
extractive cosine sentence selection under the served policy (nothing tuned: no train
question is read); a gold span matches when it is inside the sentence once both are
lower-cased and stripped of spaces and punctuation. Figures: the answer contains a gold span
(any cited sentence), the best sentence does (exact match), the best sentence's character
F1 (CMRC's longest-common-substring F1), the gold paragraph cited. Target: the answer
contains a gold span for >= 70 % of questions with the Chinese base, clearly more than with
MiniLM.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench import ROOT, SHARED_DATA, cpu_flags

CMRC = SHARED_DATA / "cmrc2018"
COLUMNS = (("answer_contains_gold", "contains"), ("best_sentence_exact_match", "best EM"),
           ("best_sentence_char_f1", "char F1"), ("gold_paragraph_cited", "para"),
           ("refusal_rate", "refused"), ("latency_ms_p50", "p50 ms"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(CMRC))
    parser.add_argument("--bases", default="bge-small-zh-v15-q,minilm",
                        help="catalogue entries (ragrec models bases), comma-separated")
    parser.add_argument("--limit", type=int, default=None, help="first N test questions")
    args = parser.parse_args()
    env = {**os.environ, "RAGREC_LANGUAGE": "zh"}
    rows = {}
    for name in args.bases.split(","):
        model = "base" if name == "minilm" else f"base:{name}"
        if name != "minilm":
            subprocess.run([sys.executable, "-m", "ragrec.cli", "models", "install-base",
                            name], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        command = [sys.executable, "-m", "ragrec.cli", "eval", "answers", "--dataset",
                   args.dataset, "--index", f"bench-cmrc-{name}", "--model", model,
                   "--report-dir", str(ROOT / "eval-reports" / "cmrc2018" / name), "--json"]
        if args.limit:
            command += ["--limit", str(args.limit)]
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise SystemExit(f"ragrec eval answers with {name} failed ({result.returncode})")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        entry = next(iter(report["systems"].values()))
        rows[name] = (entry["metrics"], time.perf_counter() - started)
        print(f"{name}: {json.dumps(entry['metrics'])}", flush=True)
    print(f"\n=== CMRC 2018 {report['split']} answers by base encoder "
          f"({next(iter(rows.values()))[0]['questions']} questions) ===")
    print(f"protocol: {report['protocol']}; Chinese index (cjk analyzer) for every base")
    print(f"machine: {os.cpu_count()} cores, CPU flags: {cpu_flags()}")
    print(f"{'base':<22}" + "".join(f"{label:>10}" for _, label in COLUMNS) + f"{'min':>8}")
    for name, (metrics, seconds) in rows.items():
        print(f"{name:<22}" + "".join(f"{metrics[key]:>10}" for key, _ in COLUMNS)
              + f"{seconds / 60:8.1f}")
    print("target: contains >= 0.70 with the Chinese base, clearly above MiniLM")


if __name__ == "__main__":
    main()
