"""Model server benchmark: embedding throughput through HTTP vs in-process encoding of the
same texts (same runtime, same process count), and latency of single short requests.

    bench/run model_server                 # torch and onnx backends
    python -m bench.model_server --backends onnx --texts 512

For each backend, in one run: (1) the in-process encoder encodes the texts (best of two
passes, model already loaded); (2) ``ragrec serve-model`` is started with that backend and
the ``ModelEndpoint`` (EAS protocol, the client ragrec's ingestion uses) sends the same texts
with 4 concurrent requests of 32; (3) 200 sequential single-text requests of ~64 word
pieces give p50/p99 latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import httpx

from bench import ROOT, SCIFACT


def sample_texts(count: int) -> list[str]:
    """Chunk texts as ragrec's ingestion makes them (SciFact abstracts, else the samples)."""
    from ragrec.chunking import Chunker, ModelTokenizer
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.eval.datasets import BeirDataset
    from ragrec.records import ParsedDocument, SourceObject

    chunker = Chunker(ModelTokenizer(base_model_dir()))
    texts: list[str] = []
    if (SCIFACT / "corpus.jsonl").is_file():
        from datetime import UTC, datetime

        from ragrec.records import Element

        for doc in BeirDataset(SCIFACT).corpus():
            obj = SourceObject(f"file:///{doc['_id']}.md", f"{doc['_id']}.md", 0, "-",
                               datetime.now(UTC))
            parsed = ParsedDocument(obj, (Element(doc["text"], "NarrativeText", None,
                                                  (doc.get("title", ""),)),), "-")
            texts += [c.embedding_text for c in chunker.chunk(parsed)]
            if len(texts) >= count:
                break
    if not texts:
        from ragrec.sources.samples import samples_dir

        for path in sorted(samples_dir().iterdir()):
            texts += [p.strip() for p in path.read_text().split("\n\n") if p.strip()]
        texts = (texts * (count // max(1, len(texts)) + 1))
    return texts[:count]


def in_process_rate(backend: str, texts: list[str]) -> float:
    from ragrec.embedding import make_embedder

    encoder = make_embedder(backend=backend)
    encoder.embed(texts[:16])
    best = None
    for _ in range(2):
        started = time.perf_counter()
        encoder.embed(texts)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return len(texts) / best


def start_server(backend: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "ragrec.cli", "serve-model", "--model", "base", "--port",
         str(port), "--backend", backend, "--service", "bench"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "RAGREC_SERVE_TOKEN": "bench-token"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("model server did not start")


def http_rate(port: int, texts: list[str]) -> float:
    from ragrec.embedding.model_endpoint import ModelEndpoint

    client = ModelEndpoint(f"http://127.0.0.1:{port}/api/predict/bench", token="bench-token",
                          batch_size=32, concurrency=4)
    client.embed(texts[:16])
    best = None
    for _ in range(2):
        started = time.perf_counter()
        result = client.embed(texts)
        elapsed = time.perf_counter() - started
        assert not result.errors, result.errors
        best = elapsed if best is None else min(best, elapsed)
    client.close()
    return len(texts) / best


def single_latency(port: int, requests: int = 200) -> dict:
    text = " ".join(["retrieval", "augmented", "generation", "over", "enterprise", "documents",
                     "with", "hybrid", "search"] * 7)  # ~64 word pieces
    latencies = []
    with httpx.Client(headers={"Authorization": "bench-token"}) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = client.post(f"http://127.0.0.1:{port}/api/predict/bench",
                                   json={"texts": [text]})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    latencies.sort()
    return {"p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--texts", type=int, default=768)
    args = parser.parse_args()
    from ragrec.dev.es_node.node import free_port

    texts = sample_texts(args.texts)
    print(f"{len(texts)} chunk texts; {os.cpu_count()} CPU cores", flush=True)
    rows = {}
    for backend in args.backends.split(","):
        local = in_process_rate(backend, texts)
        port = free_port()
        server = start_server(backend, port)
        try:
            remote = http_rate(port, texts)
            latency = single_latency(port)
        finally:
            server.terminate()
            server.wait(timeout=30)
        rows[backend] = {"in_process_texts_per_s": round(local, 1),
                         "http_texts_per_s": round(remote, 1),
                         "ratio_http_vs_in_process": round(remote / local, 3), **latency}
        print(f"  {backend}: {json.dumps(rows[backend])}", flush=True)
    print("\n=== model server benchmark ===")
    for backend, row in rows.items():
        print(f"[{backend}] in process {row['in_process_texts_per_s']:.1f} texts/s, HTTP "
              f"{row['http_texts_per_s']:.1f} texts/s, ratio {row['ratio_http_vs_in_process']:.3f}"
              f" (target >= 0.9); single 64-token request p50 {row['p50_ms']} ms, "
              f"p99 {row['p99_ms']} ms")
    if "torch" in rows and "onnx" in rows:
        speedup = rows["onnx"]["http_texts_per_s"] / rows["torch"]["http_texts_per_s"]
        print(f"ONNX Runtime vs PyTorch through HTTP: {speedup:.2f}x")


if __name__ == "__main__":
    main()
