"""Edge benchmark: a repeated-query workload through the edge Worker (workerd via Miniflare,
warm cache) vs straight to the model server, side by side in one run on loopback.

    bench/run edge
    python -m bench.edge --requests 400 --clients 4 --distinct 20

Workload: ``--distinct`` different single-query embedding requests (~12 words each, the
shape of search queries), sent ``--requests`` times in turn by ``--clients`` concurrent
clients. The edge is warmed with one pass over the distinct queries first, so its run is the
warm-cache case; the origin gets the same sequence. Requests/s and p50/p99 latency for each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench import ROOT

sys.path.insert(0, str(ROOT / "tests"))

ORIGIN_TOKEN, CLIENT = "bench-origin-token", "bench-edge-client"


def workload(distinct: int) -> list[dict]:
    topics = ["vpn", "hotel", "parental leave", "laptop theft", "expense", "onboarding",
              "password reset", "travel booking", "security incident", "search index"]
    return [{"input": [f"how do I handle {topics[i % len(topics)]} question number {i} "
                       "for the team"]} for i in range(distinct)]


def run(url: str, token: str, bodies: list[dict], requests: int, clients: int) -> dict:
    latencies: list[float] = []
    failures = 0

    def loop(worker: int) -> None:
        nonlocal failures
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for n in range(worker, requests, clients):
                started = time.perf_counter()
                response = http.post(url, json=bodies[n % len(bodies)])
                latencies.append((time.perf_counter() - started) * 1000)
                failures += response.status_code != 200

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
            "failed": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--distinct", type=int, default=20)
    args = parser.parse_args()
    from servers.edge_worker import EdgeWorker, edge_ready
    from servers.model_server_process import ModelServerProcess

    why_not = edge_ready()
    if why_not:
        raise SystemExit(why_not)
    bodies = workload(args.distinct)
    with ModelServerProcess("base", ORIGIN_TOKEN, "bench-admin") as origin, \
            EdgeWorker(origin.base, ORIGIN_TOKEN, (CLIENT,), rate=100_000,
                       burst=100_000, version_ttl=2) as edge:
        run(f"{edge.url}/v1/embeddings", CLIENT, bodies, len(bodies), 1)  # warm the cache
        run(f"{origin.base}/v1/embeddings", ORIGIN_TOKEN, bodies, len(bodies), 1)  # warm up
        rows = {"model server direct": run(f"{origin.base}/v1/embeddings", ORIGIN_TOKEN,
                                           bodies, args.requests, args.clients),
                "edge, warm cache": run(f"{edge.url}/v1/embeddings", CLIENT, bodies,
                                        args.requests, args.clients)}
    print(f"\n=== edge benchmark ({args.requests} requests over {args.distinct} distinct "
          f"queries, {args.clients} clients, loopback) ===")
    for name, row in rows.items():
        print(f"{name:>20}: {row['requests_per_s']} requests/s, p50 {row['p50_ms']} ms, "
              f"p99 {row['p99_ms']} ms, {row['failed']} failed")
    direct, edge_row = rows["model server direct"], rows["edge, warm cache"]
    print(f"edge vs direct: throughput x{edge_row['requests_per_s'] / direct['requests_per_s']:.2f}"
          f", p50 x{edge_row['p50_ms'] / direct['p50_ms']:.2f}")


if __name__ == "__main__":
    main()
