"""The base encoders side by side on one machine, one command: ingest throughput (documents
and chunks a second through ``ragrec ingest`` into the real node, the same runtime for
all), query-encode latency, size on disk, and with ``--quality`` SciFact test nDCG@10 of
BM25, dense and hybrid (``ragrec eval``, all 5,183 abstracts; about 6-10 min a base).

    bench/run bases                                  # throughput, latency, size (~15 min)
    bench/run bases --quality                        # plus SciFact retrieval (~1 h)
    bench/run bases --bases minilm,bge-small-en-v15-q --docs 500

Protocol: the first ``--docs`` SciFact abstracts as files, ingested from scratch (``--full
--reencode``: no vector reused from an earlier run) into ``bench-bases-<name>`` with the
in-process ONNX Runtime encoder (``--backend onnx``; ``minilm-int8``: the bundled model's
graph quantised to int8 at load, ``--backend onnx-int8``; the ``-q`` entries ship int8
graphs); docs/s and chunks/s are the ingest's own summary; "x minilm" is docs/s over
MiniLM's (the same documents: chunks are cut to what each base reads, 256 word pieces for
MiniLM and 512 for the others, so chunk counts differ).
Query latency: 200 SciFact queries encoded one at a time as queries (prefix included), p50
and p95, after 10 warm-up queries. Size: the model's files (the bundled MiniLM's folder
holds its safetensors weights; its int8 graph is made at load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import ROOT, SCIFACT, cpu_flags

DEFAULT = ("minilm,minilm-int8,bge-small-en-v15,bge-small-en-v15-q,e5-small-v2,e5-small-v2-q,"
           "bge-small-zh-v15-q")


def _entry(name: str) -> str:
    """The catalogue entry a row runs (``minilm-int8``: the bundled one quantised)."""
    return "minilm" if name == "minilm-int8" else name


def _env(name: str) -> dict:
    return {**os.environ, "RAGREC_BASE_MODEL": _entry(name)}


def _ragrec(args: list[str], env: dict) -> dict:
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", *args, "--json"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"ragrec {' '.join(args)} failed ({result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _subset(docs: int) -> Path:
    folder = Path(f"/var/tmp/ragrec-bench-bases-{docs}")
    if (folder / ".complete").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        for _, line in zip(range(docs), handle, strict=False):
            row = json.loads(line)
            (folder / f"{row['_id']}.md").write_text(
                f"# {row.get('title', '')}\n\n{row['text']}\n", encoding="utf-8")
    (folder / ".complete").write_text("")
    return folder


def _latency(name: str, queries: list[str]) -> tuple[float, float]:
    from ragrec.embedding import encoder_for
    from ragrec.embedding.bases import installed

    encoder = encoder_for(installed(_entry(name)),
                          "onnx-int8" if name == "minilm-int8" else "onnx")
    for text in queries[:10]:
        encoder.embed([text], role="query")
    seconds = []
    for text in queries[10:210]:
        started = time.perf_counter()
        encoder.embed([text], role="query")
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return 1000 * statistics.median(seconds), 1000 * seconds[int(0.95 * (len(seconds) - 1))]


def _size_mb(name: str) -> float:
    from ragrec.embedding.bases import installed

    folder = installed(_entry(name))
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", default=DEFAULT)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--quality", action="store_true",
                        help="also SciFact test nDCG@10 (bm25, dense, hybrid) per base")
    args = parser.parse_args()
    folder = _subset(args.docs)
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as handle:
        queries = [json.loads(line)["text"] for _, line in zip(range(210), handle,
                                                                strict=False)]
    rows = {}
    for name in args.bases.split(","):
        entry = _entry(name)
        if entry != "minilm":
            subprocess.run([sys.executable, "-m", "ragrec.cli", "models", "install-base",
                            entry], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        backend = "onnx-int8" if name == "minilm-int8" else "onnx"
        summary = _ragrec(["ingest", str(folder), "--index", f"bench-bases-{name}", "--full",
                           "--reencode", "--backend", backend, "--quiet"], _env(name))
        seconds = summary["seconds"]
        row = {"docs_per_s": summary["docs_seen"] / seconds,
               "chunks_per_s": summary["chunks_indexed"] / seconds,
               "chunks": summary["chunks_indexed"], "ingest_s": seconds,
               "size_mb": _size_mb(name)}
        row["query_p50_ms"], row["query_p95_ms"] = _latency(name, queries)
        if args.quality:
            report = _ragrec(["eval", "--dataset", str(SCIFACT), "--index",
                              f"bench-scifact-{name}", "--model",
                              "base" if entry == "minilm" else f"base:{entry}",
                              "--backend", backend, "--report-dir",
                              str(ROOT / "eval-reports" / "bases" / name)], _env(name))
            for mode in ("bm25", "dense", "hybrid"):
                row[mode] = report["metrics"][mode]["ndcg@10"]
        rows[name] = row
        print(f"{name}: {json.dumps(row)}", flush=True)
    print(f"\n=== base encoders, {args.docs} SciFact abstracts ingested, same runtime ===")
    print(f"machine: {os.cpu_count()} cores, CPU flags: {cpu_flags()}")
    print("protocol: " + " ".join(__doc__.split("Protocol: ", 1)[1].split()))
    floor = rows.get("minilm", {}).get("docs_per_s")
    quality = " bm25   dense  hybrid" if args.quality else ""
    print(f"{'base':<20} {'docs/s':>7} {'chunks/s':>9} {'x minilm':>9} {'q p50 ms':>9} "
          f"{'q p95 ms':>9} {'MB':>6}{quality}")
    for name, r in rows.items():
        ratio = f"{r['docs_per_s'] / floor:9.2f}" if floor else f"{'-':>9}"
        cells = "".join(f" {r[m]:.4f}" for m in ("bm25", "dense", "hybrid")) \
            if args.quality else ""
        print(f"{name:<20} {r['docs_per_s']:7.1f} {r['chunks_per_s']:9.1f} {ratio} "
              f"{r['query_p50_ms']:9.1f} {r['query_p95_ms']:9.1f} {r['size_mb']:6.0f}{cells}")


if __name__ == "__main__":
    main()
