"""Search API load test: p50/p99 latency and throughput of ``/search`` at N concurrent
clients, hybrid + cross-encoder rerank of the top 50 (and 20) vs hybrid alone, side by side
in one run against the real stack on loopback (``ragrec serve-api`` -> ``ragrec serve-model``
for query vectors and reranking -> Elasticsearch).

    bench/run api_load
    python -m bench.api_load --clients 10 --requests 100 --reranker file:///path/to/version

Corpus: one SciFact abstract in ten (518 documents) as files, indexed once into
``bench-api-scifact`` (the sample documents when ../shared is absent). Queries: SciFact test
claims, cycled. The model version is the base encoder with a cross-encoder: ``--reranker``'s
(a trained one), else a fresh cross-encoder head on the base model (the same compute per
pair, which is what latency measures). The load is bounded in requests and time and stays on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
ALIAS = "bench-api-scifact"
TOKEN, MODEL_TOKEN = "bench-api-token", "bench-model-token"


def model_bundle(work: Path, reranker_uri: str | None):
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.reranker import init_cross_encoder
    from ragrec.models.store import write_bundle
    from ragrec.models.uris import load_layout

    if reranker_uri:
        reranker = load_layout(reranker_uri).reranker_dir
        if reranker is None:
            raise SystemExit(f"{reranker_uri} has no reranker")
    else:
        reranker = init_cross_encoder(base_model_dir(), work / "ce-init")
    return write_bundle(work / "bench-api-v1", "bench-api", "bench-api-v1", base_model_dir(),
                        reranker)


def build_index(client, layout, alias: str = ALIAS) -> int:
    """The SciFact one-in-ten sample (or the samples) behind ``alias``, with ``layout``'s
    encoder; reused when it already holds that model version."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.eval.datasets import BeirDataset, write_corpus_as_files
    from ragrec.indexing import versions
    from ragrec.sources import open_source
    from ragrec.sources.samples import samples_dir
    from ragrec.sync import IngestOptions, Ingestor

    live = versions.current_version(client, alias)
    if live and versions.index_meta(client, live).get("model_version") == layout.version:
        return client.count(index=alias)["count"]
    if live:  # built with another bundle: start over
        for name in client.indices.get(index=f"{alias}--*", expand_wildcards="all"):
            client.indices.delete(index=name)
    folder = samples_dir()
    if (SCIFACT / "corpus.jsonl").is_file():
        folder = Path(tempfile.mkdtemp(prefix="bench-api-corpus-"))
        write_corpus_as_files(BeirDataset(SCIFACT), folder, every=10)
    print(f"indexing {folder} into {alias} ...", flush=True)
    Ingestor(client, encoder_for(layout.embedder_dir), ModelTokenizer(layout.embedder_dir),
             IngestOptions(show_progress=True)).ingest(open_source(str(folder)), alias)
    client.indices.refresh(index=alias)
    return client.count(index=alias)["count"]


def queries() -> list[str]:
    if (SCIFACT / "queries.jsonl").is_file():
        from ragrec.eval.datasets import BeirDataset

        data = BeirDataset(SCIFACT)
        texts = data.queries()
        return [texts[q] for q in sorted(data.qrels("test"))]
    from ragrec.dev.quickstart import DEMO_QUERIES

    return list(DEMO_QUERIES)


def _wait(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not start")


def load(base: str, body: dict, texts: list[str], clients: int, requests: int,
         time_limit: float) -> dict:
    """``requests`` searches from ``clients`` threads (each one request at a time)."""
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + time_limit

    def client_loop(worker: int) -> None:
        nonlocal failures
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300) as http:
            for n in range(worker, requests, clients):
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                response = http.post(f"{base}/search",
                                     json={**body, "query": texts[n % len(texts)]})
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == 200:
                    latencies.append(elapsed)
                else:
                    failures += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "failed": failures,
            "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1)
            if latencies else None,
            "requests_per_s": round(len(latencies) / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100, help="per configuration")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds per configuration at most")
    parser.add_argument("--reranker", default=None, help="model URI whose reranker to use")
    args = parser.parse_args()
    from ragrec.dev.es_node.node import free_port
    from ragrec.es_client import connect

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    layout = model_bundle(work, args.reranker)
    client = connect()
    chunks = build_index(client, layout)
    texts = queries()
    model_port, api_port = free_port(), free_port()
    env = {**os.environ, "RAGREC_SERVE_TOKEN": MODEL_TOKEN}
    model = subprocess.Popen([sys.executable, "-m", "ragrec.cli", "serve-model", "--model",
                              str(layout.root), "--port", str(model_port), "--service", "bench"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    api = None
    try:
        _wait(f"http://127.0.0.1:{model_port}/health", model, "model server")
        env = {**os.environ, "RAGREC_API_TOKEN": TOKEN, "RAGREC_API_INDEX": ALIAS,
               "RAGREC_EMBED_URL": f"http://127.0.0.1:{model_port}/api/predict/bench",
               "RAGREC_EMBED_TOKEN": MODEL_TOKEN}
        api = subprocess.Popen([sys.executable, "-m", "ragrec.cli", "serve-api", "--port",
                                str(api_port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{api_port}"
        _wait(f"{base}/health", api, "search API")
        print(f"{chunks} chunks in {ALIAS}; {len(texts)} distinct queries; {args.clients} "
              f"clients; {os.cpu_count()} CPU cores", flush=True)
        configs = {"hybrid": {"mode": "hybrid", "k": 10},
                   "hybrid+rerank top 20": {"mode": "hybrid", "k": 10, "rerank": True,
                                            "rerank_top": 20},
                   "hybrid+rerank top 50": {"mode": "hybrid", "k": 10, "rerank": True,
                                            "rerank_top": 50}}
        rows = {}
        for name, body in configs.items():
            load(base, body, texts[:5], min(args.clients, 5), 5, 120)  # warm-up
            rows[name] = load(base, body, texts, args.clients, args.requests, args.time_limit)
            print(f"  {name}: {json.dumps(rows[name])}", flush=True)
    finally:
        for process in (api, model):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    print(f"\n=== search API load test ({args.clients} concurrent clients, loopback) ===")
    for name, row in rows.items():
        print(f"{name:>22}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
              f"{row['requests_per_s']} requests/s ({row['requests']} ok, {row['failed']} failed)")
    plain, reranked = rows["hybrid"], rows["hybrid+rerank top 50"]
    if plain["p50_ms"] and reranked["p50_ms"]:
        print(f"rerank cost: p50 x{reranked['p50_ms'] / plain['p50_ms']:.1f}, throughput "
              f"x{reranked['requests_per_s'] / plain['requests_per_s']:.2f}")


if __name__ == "__main__":
    main()
