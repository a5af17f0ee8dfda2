"""The steps of a scheduled, batched ingest (``kb_ingest``) as plain functions; Airflow only
wires them together.

1. ``plan_interval``: the keys modified in a data interval, split into batches (keys, not
   content, travel between tasks). The first run of an index has no lower bound, so
   nothing older than the first interval is missed; ``all_documents`` has no bounds at all.
2. ``prepare_index``: the alias exists (first version created) and was built with this
   model, before batches run in parallel.
3. ``ingest_batch``: one batch through the normal incremental path (parse, chunk, embed,
   the chunk suite as a gate, bulk index); idempotent, never deletes.
4. ``prune_deleted``: documents gone from the full listing leave the index.
5. the index suite (``quality.index_check.validate_index``): document count vs source minus
   quarantine, unique documents, freshness.

Re-running any interval re-processes exactly the documents modified in it; unchanged ones
are skipped by fingerprint, so a backfill over past intervals converges on the same index
as one run over everything.
"""

from __future__ import annotations

from datetime import datetime

from elasticsearch import Elasticsearch

from ragrec.chunking import ModelTokenizer
from ragrec.indexing import versions
from ragrec.sources.base import Source
from ragrec.sources.selection import SelectedSource
from ragrec.sync import IngestOptions, Ingestor


def plan_interval(client: Elasticsearch, source: Source, alias: str,
                  since: datetime | None, before: datetime | None, batch_size: int,
                  all_documents: bool = False) -> dict:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    first_run = versions.current_version(client, alias) is None
    lower = None if (all_documents or first_run) else since
    # A full listing is "everything in the source now": a manual run's inferred interval
    # ends at the last full hour and would miss documents added since.
    before = None if all_documents else before
    # Sorted: not every server lists in key order, and a re-run must cut the same batches.
    keys = sorted(obj.key for obj in source.list(lower, before))
    batches = [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]
    return {"alias": alias, "source": source.uri, "documents": len(keys),
            "since": lower.isoformat() if lower else None,
            "before": before.isoformat() if before else None,
            "first_run": first_run, "batches": batches}


def _ingestor(client, embedder, tokenizer: ModelTokenizer, validator=None,
              show_progress: bool = False, **options) -> Ingestor:
    return Ingestor(client, embedder, tokenizer,
                    IngestOptions(show_progress=show_progress, **options), validator)


def prepare_index(client: Elasticsearch, embedder, tokenizer: ModelTokenizer,
                  alias: str) -> dict:
    index = _ingestor(client, embedder, tokenizer).prepare(alias)
    return {"alias": alias, "index": index, "model_version": embedder.model_version}


def ingest_batch(client: Elasticsearch, embedder, tokenizer: ModelTokenizer, source: Source,
                 keys: list[str], alias: str, validator=None) -> dict:
    selected = SelectedSource(source, keys)
    summary = _ingestor(client, embedder, tokenizer, validator,
                        partial_listing=True).ingest(selected, alias).to_dict()
    summary["vanished"] = selected.missing
    reports = getattr(validator, "reports", [])
    summary["validation"] = {"windows": len(reports),
                             "failed_windows": sum(1 for r in reports if not r.success)}
    return summary


def prune_deleted(client: Elasticsearch, embedder, tokenizer: ModelTokenizer, source: Source,
                  alias: str) -> dict:
    return _ingestor(client, embedder, tokenizer).prune(source, alias).to_dict()
