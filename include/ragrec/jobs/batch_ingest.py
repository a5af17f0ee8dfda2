"""The steps of a scheduled, batched ingest (``kb_ingest``) as plain functions; Airflow only
wires them together.

1. ``plan_interval``: the documents modified in a data interval that are new or changed
   against the index (a sorted merge of the listing and the index state, both streamed),
   cut into key ranges ``(after, last]`` (two keys per batch travel between tasks, never
   the listing). The first run of an index has no lower bound, so nothing older than the
   first interval is missed; ``all_documents`` has no bounds at all.
2. ``prepare_index``: the alias exists (first version created) and was built with this
   model, and its quarantine index exists, before batches run in parallel.
3. ``ingest_batch``: one key range through the normal incremental path (listed again, parse,
   chunk, embed, the chunk suite as a gate, bulk index); idempotent, never deletes.
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
from ragrec.indexing import sync_plan, versions
from ragrec.indexing.quarantine_store import ensure_quarantine_index
from ragrec.sources.base import Source
from ragrec.sources.key_range import KeyRangeSource
from ragrec.sync import IngestOptions, Ingestor, plan_steps


def plan_interval(client: Elasticsearch, source: Source, alias: str,
                  since: datetime | None, before: datetime | None, batch_size: int,
                  all_documents: bool = False, max_batches: int = 1024) -> dict:
    """Key ranges of at most ``max_batches`` (Airflow's ``max_map_length``) batches of
    ``batch_size`` documents to work on; more documents make the batches larger."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    live = versions.current_version(client, alias)
    first_run = live is None
    lower = None if (all_documents or first_run) else since
    # A full listing is "everything in the source now": a manual run's inferred interval
    # ends at the last full hour and would miss documents added since.
    before = None if all_documents else before
    steps, _ = plan_steps(client, source, alias, live, source.list(lower, before),
                          windowed=True)
    counts: dict[str, int] = {}

    def work_keys():
        for step in steps:
            counts[step.action] = counts.get(step.action, 0) + 1
            if step.action in sync_plan.WORK:
                yield step.doc_id

    window = {"since": lower.isoformat() if lower else None,
              "before": before.isoformat() if before else None}
    batches = [{**b, **window} for b in sync_plan.key_ranges(work_keys(), batch_size,
                                                              max_batches)]
    return {"alias": alias, "source": source.uri, "documents": sum(counts.values()),
            "to_ingest": sum(b["documents"] for b in batches), "actions": counts,
            **window, "first_run": first_run, "batches": batches}


def _ingestor(client, embedder, tokenizer: ModelTokenizer, validator=None,
              show_progress: bool = False, **options) -> Ingestor:
    return Ingestor(client, embedder, tokenizer,
                    IngestOptions(show_progress=show_progress, **options), validator)


def prepare_index(client: Elasticsearch, embedder, tokenizer: ModelTokenizer,
                  alias: str, language: str | None = None) -> dict:
    """The index the run's batches write to (``language``: en | zh | auto, as ``ragrec
    ingest --language``; None: the live index's)."""
    index = _ingestor(client, embedder, tokenizer, language=language).prepare(alias)
    ensure_quarantine_index(client, alias)  # before the batches run side by side
    return {"alias": alias, "index": index, "model_version": embedder.model_version}


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def ingest_batch(client: Elasticsearch, embedder, tokenizer: ModelTokenizer, source: Source,
                 batch: dict, alias: str, validator=None, language: str | None = None) -> dict:
    """One batch of ``plan_interval``: the key range ``(after, last]``, of the documents
    modified in the plan's ``[since, before)``."""
    selected = KeyRangeSource(source, batch.get("after"), batch["last"])
    summary = _ingestor(client, embedder, tokenizer, validator, partial_listing=True,
                        modified_since=_moment(batch.get("since")),
                        modified_before=_moment(batch.get("before")),
                        language=language).ingest(
        selected, alias).to_dict()
    reports = getattr(validator, "reports", [])
    summary["validation"] = {"windows": len(reports),
                             "failed_windows": sum(1 for r in reports if not r.success)}
    return summary


def prune_deleted(client: Elasticsearch, embedder, tokenizer: ModelTokenizer, source: Source,
                  alias: str) -> dict:
    return _ingestor(client, embedder, tokenizer).prune(source, alias).to_dict()
