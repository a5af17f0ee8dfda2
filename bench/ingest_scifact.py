"""SciFact ingestion benchmark: ragrec end to end vs pure encoding (on the same runtime, and on
torch), no-op re-run, memory,
and the peer race (LangChain, LlamaIndex) on the same node, model and corpus, in one run.

The 5,183 abstracts of ../shared/data/scifact are written as Markdown files to a temporary
``file://`` source. Each measured run is a separate process (wall time from start to exit,
imports and model loading included; peak RSS from the kernel's rusage of that process).

    bench/run                      # everything
    python -m bench.ingest_scifact --no-peers --backends torch,onnx-int8
    python -m bench.ingest_scifact --no-peers --backends onnx --no-torch-floor
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import ROOT, SCIFACT

PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
# Every system is scored the same way: its top 30 chunks for a query, collapsed to
# documents (best chunk wins), first 10 documents -> nDCG@10 against the qrels.
CHUNKS_PER_QUERY = 30


def run_measured(command: list[str], env: dict | None = None) -> dict:
    """Like run_process, with the child's own peak RSS via wait4."""
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull, tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=devnull, text=True,
                                   env=env or os.environ.copy(), cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        stdout = out.read()
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} exited with status {status}")
    return {"wall": wall, "rss_mib": usage.ru_maxrss / 1024, "stdout": stdout}


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def ragrec_ingest(folder: Path, alias: str, backend: str) -> dict:
    result = run_measured([sys.executable, "-m", "ragrec.cli", "ingest", str(folder),
                           "--index", alias, "--json", "--quiet", "--backend", backend])
    result["summary"] = last_json(result["stdout"])
    return result


def dense_ndcg(alias: str, backend: str) -> float:
    from ragrec import retrieval
    from ragrec.embedding import make_embedder
    from ragrec.es_client import connect
    from ragrec.eval.datasets import BeirDataset
    from ragrec.eval.metrics import doc_ranking, score_run

    client, embedder = connect(), make_embedder(backend=backend)
    data = BeirDataset(SCIFACT)
    queries, qrels = data.queries(), data.qrels("test")
    ids = list(qrels)
    vectors = embedder.embed([queries[q] for q in ids], role="query").vectors
    run = {}
    for qid, vector in zip(ids, vectors, strict=True):
        hits = retrieval.dense(client, alias, vector, k=CHUNKS_PER_QUERY)
        run[qid] = doc_ranking(h.doc_id for h in hits)[:10]
    return score_run(run, qrels)["ndcg@10"]


def drop(alias: str) -> None:
    from ragrec.es_client import connect

    client = connect()
    for name in client.indices.get(index=f"{alias}*", allow_no_indices=True,
                                   expand_wildcards="all"):
        client.indices.delete(index=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="onnx,torch",
                        help="in-process encoder runtimes to ingest with (onnx-int8 too)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-torch-floor", action="store_true",
                        help="measure the floor on each backend's runtime only (not on torch)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark indices")
    args = parser.parse_args()
    from ragrec.config import ElasticsearchSettings
    from ragrec.es_client import connect, resolve_hosts
    from ragrec.eval.datasets import BeirDataset, write_corpus_as_files

    es_url = resolve_hosts(ElasticsearchSettings.from_env())[0]
    print(f"Elasticsearch {connect().info()['version']['number']} at {es_url}; "
          f"{os.cpu_count()} CPU cores", flush=True)
    work = Path(tempfile.mkdtemp(prefix="ragrec-bench-"))
    tag = uuid.uuid4().hex[:6]
    aliases: list[str] = []
    try:
        data = BeirDataset(SCIFACT)
        full, sample = work / "full", work / "sample"
        docs = write_corpus_as_files(data, full)
        write_corpus_as_files(data, sample, every=10)
        print(f"corpus: {docs} SciFact abstracts as files under {full}", flush=True)

        rows: dict[str, dict] = {}
        for backend in args.backends.split(","):
            alias = f"bench-scifact-{backend}-{tag}"
            aliases.append(alias)
            first = ragrec_ingest(full, alias, backend)
            noop = ragrec_ingest(full, alias, backend)
            rows[backend] = {"full": first, "noop": noop, "ndcg": dense_ndcg(alias, backend)}
            print(f"  ragrec[{backend}] full {first['wall']:.1f}s, no-op {noop['wall']:.2f}s, "
                  f"nDCG@10 {rows[backend]['ndcg']:.4f}", flush=True)
        sample_alias = f"bench-scifact-sample-{tag}"
        aliases.append(sample_alias)
        base_backend = args.backends.split(",")[0]
        sample_run = ragrec_ingest(sample, sample_alias, base_backend)
        encode = {}  # runtime -> the floor: pure encoding of the same chunks on it
        floor_runtimes = [*args.backends.split(","), *([] if args.no_torch_floor else ["torch"])]
        for runtime in dict.fromkeys(floor_runtimes):
            measured = run_measured([sys.executable, "-m", "bench.encode_only", str(full),
                                     "--runtime", runtime])
            measured["result"] = last_json(measured["stdout"])
            encode[runtime] = measured
            print(f"  pure encoding [{runtime}] {measured['result']['encode_seconds']:.1f}s "
                  f"(batch {measured['result']['best_batch_size']})", flush=True)

        peers = {}
        if not args.no_peers:
            if not PEERS_PYTHON.is_file():
                print("  peers skipped: .venv-peers missing (bench/run creates it)")
            for peer in ("langchain", "llamaindex") if PEERS_PYTHON.is_file() else ():
                index = f"bench-scifact-{peer}-{tag}"
                aliases.append(index)
                measured = run_measured([str(PEERS_PYTHON), str(ROOT / "bench" / "peers.py"),
                                         peer, str(full), index, es_url, "--eval",
                                         str(SCIFACT)])
                measured["result"] = last_json(measured["stdout"])
                measured["ingest_wall"] = measured["wall"] - measured["result"]["eval_seconds"]
                peers[peer] = measured
                print(f"  {peer}: process {measured['ingest_wall']:.1f}s, "
                      f"nDCG@10 {measured['result']['ndcg@10']:.4f}", flush=True)

        report(rows, sample_run, encode, peers, docs)
    finally:
        if not args.keep:
            for alias in aliases:
                drop(alias)
        shutil.rmtree(work, ignore_errors=True)


def report(rows, sample_run, encode, peers, docs) -> None:
    print("\n=== ragrec ingest benchmark: SciFact corpus, one run ===")
    floors = {runtime: measured["result"]["encode_seconds"] for runtime, measured in
              encode.items()}
    base = next(iter(rows))
    for backend, row in rows.items():
        summary = row["full"]["summary"]
        wall = row["full"]["wall"]
        print(f"\n[ragrec, encoder backend {backend}]")
        print(f"  full ingest (process wall)      {wall:8.1f} s   "
              f"{summary['docs_seen'] / wall:6.1f} docs/s  "
              f"{summary['chunks_indexed'] / wall:6.1f} chunks/s  "
              f"{summary['tokens_indexed'] / wall:7.0f} tokens/s")
        print(f"  no-op re-run (process wall)     {row['noop']['wall']:8.2f} s")
        print(f"  dense nDCG@10 (SciFact test)    {row['ndcg']:8.4f}")
        print(f"  ratio ingest / pure encoding, same runtime ({backend}) "
              f"{wall / floors[backend]:8.3f}   (target <= 1.10)")
        if "torch" in floors:
            print(f"  ratio ingest / pure encoding on torch       "
                  f"{wall / floors['torch']:8.3f}   (the older, mixed-runtime ratio)")
        print(f"  ratio no-op / full              {row['noop']['wall'] / wall:8.4f}   "
              f"(target <= 0.03)")
        for peer, measured in peers.items():
            print(f"  ratio ragrec / {peer:<10s}       {wall / measured['ingest_wall']:8.3f}   "
                  f"(target <= 0.55; nDCG {row['ndcg']:.4f} vs "
                  f"{measured['result']['ndcg@10']:.4f})")
    base_row = rows[base]
    print(f"\n  peak RSS full / 10% sample ({base})   "
          f"{base_row['full']['rss_mib']:.0f} / {sample_run['rss_mib']:.0f} MiB = "
          f"{base_row['full']['rss_mib'] / sample_run['rss_mib']:.2f}   (target <= 1.5)")
    for runtime, measured in encode.items():
        result, seconds = measured["result"], floors[runtime]
        print(f"  pure encoding [{runtime}]: {result['chunks']} chunks in {seconds:.1f} s at "
              f"batch size {result['best_batch_size']} ({result['chunks'] / seconds:.1f} "
              f"chunks/s; model load {result['model_load_seconds']:.1f} s not counted; "
              f"trials {result['batch_trials']})")
    summary = base_row["full"]["summary"]
    print(f"  ragrec indexed {summary['chunks_indexed']} chunks / {summary['tokens_indexed']} "
          f"model tokens from {docs} docs")
    for peer, measured in peers.items():
        print(f"  {peer}: process wall {measured['ingest_wall']:.1f} s (evaluation excluded), "
              f"{measured['result']['chunks']} "
              f"chunks, nDCG@10 {measured['result']['ndcg@10']:.4f}, "
              f"peak RSS {measured['rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
