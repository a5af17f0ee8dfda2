"""Bulk-indexing throughput into the real node: request size and refresh policy, side by side.

Passages shaped like ragrec's (about 200 words of text + a 384-d vector, the base model's
size) are indexed with several bulk request sizes, with refresh on (1s) and off during the
load. Prints docs/s for each and the ratio to the client's default (500 actions / 100 MiB).

    python -m bench.es_bulk [--docs 20000]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

from elasticsearch import helpers

from ragrec.es_client import connect

WORDS = ("index search vector passage model query token embed chunk rerank alias shard "
         "document policy travel network security answer cluster refresh bulk").split()


def passages(count: int, seed: int = 7):
    rng = random.Random(seed)
    for i in range(count):
        yield {
            "doc_id": f"doc-{i // 8}",
            "text": " ".join(rng.choice(WORDS) for _ in range(200)),
            "vector": [rng.uniform(-1, 1) for _ in range(384)],
        }


MAPPING = {
    "properties": {
        "doc_id": {"type": "keyword"},
        "text": {"type": "text", "analyzer": "english"},
        "vector": {"type": "dense_vector", "dims": 384, "index": True, "similarity": "cosine"},
    }
}


def run_case(client, docs, chunk_size, max_bytes, refresh_off):
    index = f"ragrec-bench-bulk-{uuid.uuid4().hex[:8]}"
    settings = {"number_of_replicas": 0}
    if refresh_off:
        settings["refresh_interval"] = "-1"
    client.indices.create(index=index, mappings=MAPPING, settings=settings)
    try:
        start = time.perf_counter()
        ok, _ = helpers.bulk(
            client.options(request_timeout=120),
            ({"_index": index, "_source": d} for d in docs),
            chunk_size=chunk_size, max_chunk_bytes=max_bytes,
        )
        client.indices.refresh(index=index)
        seconds = time.perf_counter() - start
        assert client.count(index=index)["count"] == len(docs) == ok
        return len(docs) / seconds
    finally:
        client.indices.delete(index=index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20000)
    args = parser.parse_args()
    client = connect()
    docs = list(passages(args.docs))
    print(f"bulk indexing {args.docs} passages (384-d vectors) into "
          f"Elasticsearch {client.info()['version']['number']}")
    cases = [
        ("default: 500 actions", 500, 100 << 20, False),
        ("200 actions", 200, 100 << 20, False),
        ("2000 actions / 10 MiB", 2000, 10 << 20, False),
        ("500 actions, refresh off", 500, 100 << 20, True),
        ("2000 actions / 10 MiB, refresh off", 2000, 10 << 20, True),
    ]
    baseline = None
    for label, chunk, max_bytes, refresh_off in cases:
        rate = run_case(client, docs, chunk, max_bytes, refresh_off)
        baseline = baseline or rate
        print(f"  {label:38s} {rate:9.0f} docs/s   ratio to default {rate / baseline:5.2f}")


if __name__ == "__main__":
    main()
