"""The sync plan's memory and time, from 10k to 1M objects: flat memory, linear time.

A simulated source lists N objects (``kb/000000042.md``), in key order (as OSS and the
local folder list) or in a scrambled order (a source that must be sorted externally). Against
it stands an index state in which 10 % of the listed documents are missing (new), 5 % carry
another fingerprint (changed), the rest match (unchanged), and one indexed document per 50
listed is gone from the source (deleted). Each case runs in a child process of its own,
which reports its peak resident memory above what it held before planning (the kernel's
peak-RSS mark, reset just before)
and the wall time of the plan:

- ``key ranges``: what ``kb_ingest``'s plan task does (``jobs.batch_ingest.plan_interval``'s
  merge and ``sync_plan.key_ranges``, batch 64, at most 1,024 ranges);
- ``spooled work``: what ``ragrec ingest`` plans before it reads (``sync.plan_sync``: the
  work and deletion lists spooled to disk past 20k entries), then iterated once;
- index state ``simulated`` (a generator in key order) or ``elasticsearch`` (the real
  composite aggregation over an index holding one chunk per document, built once and kept
  as ``bench-plan-<N>``; ``plan_interval`` itself, quarantine lookup included).

    python -m bench.ingest_plan [--sizes 10000,100000,1000000] [--es-sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

NEW_EVERY, CHANGED_EVERY, DELETED_EVERY = 10, 20, 50
SCRAMBLE = 1_000_003  # a prime: i -> i * SCRAMBLE mod N visits every i once when N is 10^k
STAMP = datetime(2026, 1, 1, tzinfo=UTC)
BATCH_SIZE, MAX_BATCHES = 64, 1024


def key(i: int) -> str:
    return f"kb/{i:09d}.md"


def deleted_key(i: int) -> str:
    return f"kb/{i:09d}.old"  # sorts right after key(i)


class SimulatedSource:
    """N objects, listed in key order or scrambled (each key once either way)."""

    def __init__(self, size: int, ordered: bool):
        self.size, self.key_ordered = size, ordered
        self.uri = f"sim://{size}"

    def list(self, modified_since=None, modified_before=None, start_after=None):
        from ragrec.records import SourceObject

        for n in range(self.size):
            i = n if self.key_ordered else (n * SCRAMBLE) % self.size
            yield SourceObject(uri=f"{self.uri}/{key(i)}", key=key(i), size=1000 + i % 977,
                               fingerprint=f"fp-{i}", last_modified=STAMP)


def indexed_states(size: int):
    """(doc_id, fingerprint) of what the index holds, in key order."""
    for i in range(size):
        if i % NEW_EVERY:
            yield key(i), (f"fp-{i}-old" if i % CHANGED_EVERY == 1 else f"fp-{i}")
        if i % DELETED_EVERY == 0:
            yield deleted_key(i), f"fp-{i}"


def simulated_states(size: int):
    from ragrec.indexing.doc_state import DocState

    for doc_id, fingerprint in indexed_states(size):
        yield DocState(doc_id, frozenset([fingerprint]), 1, 1, 0)


def expected_counts(size: int) -> dict[str, int]:
    new = len(range(0, size, NEW_EVERY))
    changed = len(range(1, size, CHANGED_EVERY))
    return {"new": new, "changed": changed, "unchanged": size - new - changed,
            "deleted": len(range(0, size, DELETED_EVERY))}


# ------------------------------------------------------------------- the index, built once

def es_alias(size: int) -> str:
    return f"bench-plan-{size}"


def ensure_index(client, size: int) -> None:
    """An index behind ``bench-plan-<size>`` holding ``indexed_states(size)``, one chunk per
    document (no vectors: the plan reads keywords only); reused when complete."""
    from elasticsearch import helpers

    from ragrec.indexing import versions
    from ragrec.indexing.mapping import chunk_index_body

    alias = es_alias(size)
    expected = sum(1 for _ in indexed_states(size))
    live = versions.current_version(client, alias)
    if live and client.count(index=alias)["count"] == expected:
        return
    versions.drop_orphans(client, alias)
    body = chunk_index_body(384, "bench-plan")
    body["settings"]["refresh_interval"] = "-1"
    name = versions.create_version(client, alias, body)
    print(f"indexing {expected:,} documents into {name} (once) ...", flush=True)
    started = time.perf_counter()
    actions = ({"_index": name, "_id": doc_id,
                "_source": {"doc_id": doc_id, "chunk_no": 0, "chunk_count": 1,
                            "source_fingerprint": fingerprint}}
               for doc_id, fingerprint in indexed_states(size))
    for ok, item in helpers.streaming_bulk(client.options(request_timeout=120), actions,
                                           chunk_size=5000, raise_on_error=True):
        assert ok, item
    client.indices.put_settings(index=name, settings={"refresh_interval": None})
    client.indices.refresh(index=name)
    versions.point_alias(client, alias, name)
    versions.prune_versions(client, alias, 1)
    print(f"  {time.perf_counter() - started:.0f} s", flush=True)


# ------------------------------------------------------------------------- one case (child)

def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> float:
    """Resets the kernel's peak-RSS mark (``clear_refs`` 5, Linux >= 4.0), so the peak
    measured is the plan's, not the imports'; returns the RSS now (MB)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_mb("VmRSS")


def run_case(size: int, ordered: bool, state: str, consumer: str) -> dict:
    from ragrec.indexing import sync_plan
    from ragrec.sync import plan_sync

    source = SimulatedSource(size, ordered)
    client = None
    if state == "elasticsearch":
        from ragrec.es_client import connect
        from ragrec.jobs.batch_ingest import plan_interval

        client = connect()
        client.info()
    gc.collect()
    baseline = _reset_peak()
    started = time.perf_counter()
    counts: dict[str, int] = {}
    ranges = 0
    if consumer == "key ranges" and client is not None:
        planned = plan_interval(client, source, es_alias(size), None, None, BATCH_SIZE,
                                all_documents=True, max_batches=MAX_BATCHES)
        counts, ranges = dict(planned["actions"]), len(planned["batches"])
        # plan_interval's window never deletes: count the deletions a full run would see.
        counts["deleted"] = expected_counts(size)["deleted"]
    else:
        from ragrec.sources.ordering import in_key_order

        steps = sync_plan.merge_plan(in_key_order(source, source.list()),
                                     simulated_states(size), {})
        if consumer == "key ranges":
            def work_keys():
                for step in steps:
                    counts[step.action] = counts.get(step.action, 0) + 1
                    if step.action in sync_plan.WORK:
                        yield step.doc_id

            ranges = len(sync_plan.key_ranges(work_keys(), BATCH_SIZE, MAX_BATCHES))
        else:
            plan = plan_sync(steps, {})
            counts = dict(plan.counts)
            work = sum(1 for _ in plan.work)
            assert work == counts.get("new", 0) + counts.get("changed", 0)
            plan.close()
    seconds = time.perf_counter() - started
    want = expected_counts(size)
    got = {k: counts.get(k, 0) for k in want}
    if got != want:
        raise SystemExit(f"plan counts {got} != expected {want}")
    return {"size": size, "order": "key order" if ordered else "scrambled", "state": state,
            "consumer": consumer, "seconds": round(seconds, 2),
            "peak_mb": round(_status_mb("VmHWM") - baseline, 1), "baseline_mb": round(baseline, 1),
            "ranges": ranges}


def child(args: argparse.Namespace) -> None:
    print(json.dumps(run_case(args.size, args.order == "ordered", args.state, args.consumer)))


def in_child(size: int, ordered: bool, state: str, consumer: str) -> dict:
    command = [sys.executable, "-m", "bench.ingest_plan", "--child", "--size", str(size),
               "--order", "ordered" if ordered else "scrambled", "--state", state,
               "--consumer", consumer]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        raise SystemExit(f"case failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------- report

def _sizes(text: str) -> list[int]:
    return [int(s.replace("_", "")) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--es-sizes", default="10000,100000,1000000",
                        help="sizes also planned against a real index ('' for none)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--order", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--consumer", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    from ragrec.sources.ordering import RUN_SIZE

    sizes, es_sizes = _sizes(args.sizes), _sizes(args.es_sizes)
    print(f"# sync plan: memory and time by listing size ({os.cpu_count()} cores, "
          f"Python {platform.python_version()})")
    print(f"protocol: simulated listing of N objects; index state: {100 // NEW_EVERY} % of "
          f"them new, {100 // CHANGED_EVERY} % changed, the rest unchanged, N/{DELETED_EVERY} "
          f"deleted; one child process per case; peak = the child's peak RSS (VmHWM, reset "
          f"before planning) above its RSS then; key ranges of {BATCH_SIZE} (at most "
          f"{MAX_BATCHES}); each spool (work, deletions) and each sort run holds "
          f"{RUN_SIZE:,} entries in memory, the rest on disk")
    cases = [(n, True, "simulated", c) for n in sizes for c in ("key ranges", "spooled work")]
    cases += [(n, False, "simulated", "key ranges") for n in sizes]
    if es_sizes:
        from ragrec.es_client import connect

        client = connect()
        print(f"Elasticsearch {client.info()['version']['number']}")
        for n in es_sizes:
            ensure_index(client, n)
        cases += [(n, True, "elasticsearch", "key ranges") for n in es_sizes]
    rows = []
    print("\n| objects | listing | index state | plan | seconds | s per 1M | peak MB |")
    print("|---|---|---|---|---|---|---|")
    for size, ordered, state, consumer in cases:
        row = in_child(size, ordered, state, consumer)
        rows.append(row)
        print(f"| {size:,} | {row['order']} | {state} | {consumer} | {row['seconds']:.2f} | "
              f"{row['seconds'] * 1e6 / size:.1f} | {row['peak_mb']:.1f} |", flush=True)
    print("\npeak MB, smallest -> largest size, per case:")
    for (ordered, state, consumer) in dict.fromkeys((c[1], c[2], c[3]) for c in cases):
        same = [r for r in rows if (r["order"] == ("key order" if ordered else "scrambled")
                                    and r["state"] == state and r["consumer"] == consumer)]
        if len(same) > 1:
            print(f"  {same[0]['order']}, {state}, {consumer}: "
                  + " -> ".join(f"{r['peak_mb']:.1f}" for r in same)
                  + f" (x{same[-1]['size'] // same[0]['size']:,} objects)")


if __name__ == "__main__":
    main()
