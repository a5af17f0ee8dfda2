"""Search API load test: p50/p99 latency and throughput of ``/search`` at N concurrent
clients, hybrid + cross-encoder rerank of the top 50 (and 20) vs hybrid alone, on each
model-server runtime (ONNX Runtime, the default, and PyTorch) side by side in one run
against the real stack on loopback (``ragrec serve-api`` -> ``ragrec serve-model --backend
B`` for query vectors and reranking -> Elasticsearch); then the same ranking path in process
with each runtime's cross-encoder (``Searcher`` with the rerank spec) scored on the judged
queries: nDCG@10 of both and the largest score difference, and the (query, passage) pair
lengths against the reranker's token budget.

    bench/run api_load
    python -m bench.api_load --clients 10 --requests 100 --reranker file:///path/to/version

Corpus: one SciFact abstract in ten (518 documents) as files, indexed once into
``bench-api-scifact`` (the sample documents when ../shared is absent). Queries: SciFact test
claims, cycled; the judged ones are those with a relevant document in the sample. The model
version is the base encoder with a cross-encoder: ``--reranker``'s (a trained one), else a
fresh cross-encoder head on the base model (the same compute per pair, which is what latency
measures; its nDCG is then only a check that both runtimes rank alike). The load is bounded
in requests and time and stays on 127.0.0.1.
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

from bench import ROOT, SCIFACT

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


def build_index(client, layout, alias: str = ALIAS) -> tuple[int, Path]:
    """The SciFact one-in-ten sample (or the samples) behind ``alias``, with ``layout``'s
    encoder (reused when it already holds that model version): its chunks and folder."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.eval.datasets import BeirDataset, write_corpus_as_files
    from ragrec.indexing import versions
    from ragrec.sources import open_source
    from ragrec.sources.samples import samples_dir
    from ragrec.sync import IngestOptions, Ingestor

    folder = samples_dir()
    if (SCIFACT / "corpus.jsonl").is_file():
        folder = Path(tempfile.gettempdir()) / "bench-api-corpus"
        if not folder.is_dir():  # written aside, then renamed: never half a corpus
            partial = Path(tempfile.mkdtemp(prefix="bench-api-corpus-"))
            write_corpus_as_files(BeirDataset(SCIFACT), partial, every=10)
            partial.rename(folder)
    live = versions.current_version(client, alias)
    if live and versions.index_meta(client, live).get("model_version") == layout.version:
        return client.count(index=alias)["count"], folder
    if live:  # built with another bundle: start over
        for name in client.indices.get(index=f"{alias}--*", expand_wildcards="all"):
            client.indices.delete(index=name)
    print(f"indexing {folder} into {alias} ...", flush=True)
    Ingestor(client, encoder_for(layout.embedder_dir), ModelTokenizer(layout.embedder_dir),
             IngestOptions(show_progress=True)).ingest(open_source(str(folder)), alias)
    client.indices.refresh(index=alias)
    return client.count(index=alias)["count"], folder


def queries() -> list[str]:
    if (SCIFACT / "queries.jsonl").is_file():
        from ragrec.eval.datasets import BeirDataset

        data = BeirDataset(SCIFACT)
        texts = data.queries()
        return [texts[q] for q in sorted(data.qrels("test"))]
    from ragrec.dev.quickstart import DEMO_QUERIES

    return list(DEMO_QUERIES)


def judged_sample(folder: Path) -> Path | None:
    """A golden folder of the SciFact test claims whose relevant documents are all in the
    bench corpus (the judgments restricted to it), or None without SciFact."""
    if not (SCIFACT / "qrels" / "test.tsv").is_file():
        return None
    from ragrec.eval.datasets import BeirDataset

    data = BeirDataset(SCIFACT)
    kept = {p.stem for p in Path(folder).glob("*.md")} if folder else set()
    qrels = {q: docs for q, docs in data.qrels("test").items() if set(docs) <= kept}
    if not qrels:
        return None
    texts = data.queries()
    golden = Path(tempfile.mkdtemp(prefix="bench-api-golden-"))
    (golden / "qrels").mkdir()
    (golden / "queries.jsonl").write_text("".join(
        json.dumps({"_id": q, "text": texts[q]}) + "\n" for q in sorted(qrels)))
    (golden / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q in sorted(qrels) for d, g in qrels[q].items()))
    return golden


def ranking_equality(client, layout, golden: Path, top: int = 50) -> dict:
    """The served rerank spec's ranking with the ONNX and the PyTorch cross-encoder, in
    process on the same index: nDCG@10 of each, the largest score gap, pair lengths."""
    from tokenizers import Tokenizer

    from ragrec.embedding import encoder_for
    from ragrec.eval.golden import evaluate_golden, load_golden
    from ragrec.models.reranker import RERANK_MAX_LENGTH, load_cross_encoder
    from ragrec.retrieval import Searcher, SearchSpec
    from ragrec.retrieval.searcher import PinnedModels

    embedder = encoder_for(layout.embedder_dir)
    claims = list(load_golden(golden)[0].values())
    spec = SearchSpec(mode="hybrid", rerank_top=top)
    scores, gaps, lengths = {}, [], []
    rerankers = {b: load_cross_encoder(layout.reranker_dir, backend=b)
                 for b in ("onnx", "torch")}
    for backend, reranker in rerankers.items():
        searcher = Searcher(client, PinnedModels(embedder, reranker))
        started = time.perf_counter()
        scores[backend] = evaluate_golden(searcher, ALIAS, golden, spec).ndcg_at_10
        print(f"  nDCG@10 with the {backend} cross-encoder: {scores[backend]} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    tokenizer = Tokenizer.from_file(str(layout.reranker_dir / "tokenizer.json"))
    tokenizer.no_truncation()  # the file's own setting would cap what is measured
    tokenizer.no_padding()
    searcher = Searcher(client, PinnedModels(embedder, None))
    first = SearchSpec(mode="hybrid")
    for n, text in enumerate(claims):
        passages = [h.text for h in searcher.search(ALIAS, text, first, k=top).hits]
        lengths += [len(e.ids) for e in tokenizer.encode_batch([(text, p) for p in passages])]
        if n < 10:  # the score gap on ten queries' heads
            a = rerankers["onnx"].score(text, passages)
            b = rerankers["torch"].score(text, passages)
            gaps.append(float(max(abs(x - y) for x, y in zip(a, b, strict=True))))
    lengths.sort()
    return {"queries": len(claims), "ndcg_onnx": scores["onnx"],
            "ndcg_torch": scores["torch"], "max_score_gap": max(gaps),
            "pair_tokens_p50": lengths[len(lengths) // 2],
            "pair_tokens_p99": lengths[int(0.99 * (len(lengths) - 1))],
            "pair_tokens_max": lengths[-1], "budget": RERANK_MAX_LENGTH,
            "truncated": round(sum(n > RERANK_MAX_LENGTH for n in lengths) / len(lengths), 4)}


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
    statuses: dict[str, int] = {}
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
                    code = str(response.status_code)
                    statuses[code] = statuses.get(code, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "failed": failures,
            "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1)
            if latencies else None,
            "requests_per_s": round(len(latencies) / wall, 2), "failed_statuses": statuses}


def serve_and_load(args, layout, texts: list[str], backend: str) -> dict:
    """Model server on ``backend`` and the search API in front of it; each configuration's
    load (after a short warm-up)."""
    from ragrec.dev.es_node.node import free_port

    model_port, api_port = free_port(), free_port()
    env = {**os.environ, "RAGREC_SERVE_TOKEN": MODEL_TOKEN}
    model = subprocess.Popen([sys.executable, "-m", "ragrec.cli", "serve-model", "--model",
                              str(layout.root), "--port", str(model_port), "--service", "bench",
                              "--backend", backend],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    api = None
    rows = {}
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
        slices = iter(range(0, len(texts), args.single + args.requests))
        for name, body in CONFIGS.items():
            load(base, body, texts[-5:], min(args.clients, 5), 5, 120)  # warm-up
            start = next(slices)  # queries no earlier load asked: the pair cache is cold
            for clients, count, first in ((1, args.single, start),
                                          (args.clients, args.requests, start + args.single)):
                row = load(base, body, texts[first:first + count], clients, count,
                           args.time_limit)
                rows[(backend, name, clients)] = row
                print(f"  {backend} {name} x{clients}: {json.dumps(row)}", flush=True)
    finally:
        for process in (api, model):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:  # still working through a backlog
                    process.kill()
                    process.wait()
    return rows


CONFIGS = {"hybrid": {"mode": "hybrid", "k": 10},
           "hybrid+rerank top 20": {"mode": "hybrid", "k": 10, "rerank": True,
                                    "rerank_top": 20},
           "hybrid+rerank top 50": {"mode": "hybrid", "k": 10, "rerank": True,
                                    "rerank_top": 50}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=60,
                        help="per configuration at --clients")
    parser.add_argument("--single", type=int, default=20,
                        help="requests per configuration from a single client")
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="seconds per configuration and client count at most")
    parser.add_argument("--backends", default="onnx,torch",
                        help="model-server runtimes to compare (comma-separated; '' for "
                             "the in-process ranking comparison only)")
    parser.add_argument("--reranker", default=None, help="model URI whose reranker to use")
    args = parser.parse_args()
    from ragrec.es_client import connect

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    layout = model_bundle(work, args.reranker)
    client = connect()
    chunks, folder = build_index(client, layout)
    texts = queries()
    needed = len(CONFIGS) * (args.single + args.requests) + 5
    repeats = len(texts) < needed
    if repeats:
        texts = texts * (needed // len(texts) + 1)
    print(f"{chunks} chunks in {ALIAS}; {len(set(texts))} distinct queries ("
          f"{'repeated: the pair cache answers some' if repeats else 'none asked twice'}); "
          f"1 and {args.clients} clients, each one request at a time; "
          f"{os.cpu_count()} CPU cores; reranker: "
          f"{args.reranker or 'fresh head on the base encoder'}", flush=True)
    rows = {}
    for backend in filter(None, args.backends.split(",")):
        rows.update(serve_and_load(args, layout, texts, backend))
    golden = judged_sample(folder)
    equality = ranking_equality(client, layout, golden) if golden else None
    print(f"\n=== search API load test (loopback, {os.cpu_count()} cores) ===")
    print(f"{'runtime':>8} {'configuration':>22} {'clients':>7} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'req/s':>7}  ok/failed")
    for (backend, name, clients), row in rows.items():
        print(f"{backend:>8} {name:>22} {clients:>7} {row['p50_ms']!s:>9} {row['p99_ms']!s:>9} "
              f"{row['requests_per_s']:>7}  {row['requests']}/{row['failed']}")
    if equality:
        print(f"\nsame ranking path in process, hybrid + rerank top 50, "
              f"{equality['queries']} judged SciFact test claims: nDCG@10 ONNX "
              f"{equality['ndcg_onnx']} vs PyTorch {equality['ndcg_torch']} (difference "
              f"{abs(equality['ndcg_onnx'] - equality['ndcg_torch']):.4f}; largest score gap "
              f"{equality['max_score_gap']:.1e})")
        print(f"(query, passage) pairs: {equality['pair_tokens_p50']} word pieces p50, "
              f"{equality['pair_tokens_p99']} p99, {equality['pair_tokens_max']} max; budget "
              f"{equality['budget']} (truncated: {equality['truncated']:.1%})")


if __name__ == "__main__":
    main()
