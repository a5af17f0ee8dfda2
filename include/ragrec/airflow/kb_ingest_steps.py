"""kb_ingest's task bodies: Connections in, ``ragrec.jobs.batch_ingest`` does the work."""

from __future__ import annotations

import logging
from datetime import datetime

from ragrec.airflow import runtime
from ragrec.jobs.batch_ingest import (
    ingest_batch,
    plan_interval,
    prepare_index,
    prune_deleted,
)
from ragrec.quality.index_check import validate_index

log = logging.getLogger(__name__)


class QualityGateFailed(RuntimeError):
    pass


def source_uri(params: dict) -> str:
    return params.get("source") or runtime.default_source_uri()


def index_language(params: dict) -> str | None:
    """The run's index language: its ``language`` param, else ``RAGREC_LANGUAGE``, else
    (None) the live index's, else the base encoder's (``indexing.language``)."""
    from ragrec.config import IndexLayoutSettings

    return params.get("language") or IndexLayoutSettings.from_env().language


def plan(params: dict, since: datetime | None, before: datetime | None) -> dict:
    from airflow.configuration import conf

    result = plan_interval(runtime.es_client(), runtime.source(source_uri(params)),
                           params["index"], since, before, int(params["batch_size"]),
                           all_documents=bool(params.get("all_documents")),
                           max_batches=conf.getint("core", "max_map_length", fallback=1024))
    log.info("%d documents modified in [%s, %s), %d new or changed -> %d key ranges",
             result["documents"], result["since"], result["before"], result["to_ingest"],
             len(result["batches"]))
    return result


def prepare(params: dict) -> dict:
    client = runtime.es_client()
    embedder, tokenizer = runtime.encoder_for_index(client, params["index"])
    return prepare_index(client, embedder, tokenizer, params["index"],
                         language=index_language(params))


def batch_validator(embedder=None):
    from ragrec.chunking import ChunkSettings
    from ragrec.quality.batch_check import BatchValidator
    from ragrec.quality.expectations import ChunkRules

    embedder = embedder or runtime.encoder()[0]
    limit = getattr(embedder, "max_input_tokens", None) or 512
    return BatchValidator(ChunkRules(dims=embedder.dims, model_version=embedder.model_version,
                                     max_tokens=ChunkSettings().size, max_model_tokens=limit))


def ingest(params: dict, batch: dict) -> dict:
    client = runtime.es_client()
    embedder, tokenizer = runtime.encoder_for_index(client, params["index"])
    summary = ingest_batch(client, embedder, tokenizer, runtime.source(source_uri(params)),
                           batch, params["index"], validator=batch_validator(embedder),
                           language=index_language(params))
    log.info("keys (%r, %r]: %d new, %d changed, %d unchanged, %d quarantined, "
             "%d chunks (%d reused vectors)", batch.get("after"), batch["last"],
             summary["docs_new"],
             summary["docs_changed"], summary["docs_unchanged"], summary["docs_quarantined"],
             summary["chunks_indexed"], summary["chunks_reused"])
    summary.pop("quarantined", None)
    return summary


def prune(params: dict) -> dict:
    client = runtime.es_client()
    embedder, tokenizer = runtime.encoder_for_index(client, params["index"])
    summary = prune_deleted(client, embedder, tokenizer,
                            runtime.source(source_uri(params)), params["index"])
    log.info("pruned %d documents gone from the source", summary["docs_deleted"])
    return {k: summary[k] for k in ("docs_seen", "docs_deleted", "index")}


def validate(params: dict, summaries: list[dict] | None,
             before: datetime | None = None, plan: dict | None = None) -> dict:
    from ragrec.indexing import versions
    from ragrec.quality.runner import QualityRunner

    client = runtime.es_client()
    report = validate_index(client, runtime.source(source_uri(params)), params["index"],
                            QualityRunner(runtime.quality_docs_dir()),
                            before=None if params.get("all_documents") else before)
    log.info("%s", report.summary())
    if not report.success:
        raise QualityGateFailed(report.summary())
    totals = {k: sum(s.get(k, 0) for s in summaries or [])
              for k in ("docs_seen", "docs_new", "docs_changed", "docs_unchanged",
                        "docs_quarantined", "chunks_indexed", "chunks_reused")}
    if plan:  # unchanged documents run in no batch: the plan counted them
        actions = plan.get("actions", {})
        totals["docs_seen"] = plan["documents"]
        totals["docs_unchanged"] = actions.get("unchanged", 0) + actions.get("quarantined", 0)
    index = versions.current_version(client, params["index"])
    return {"alias": params["index"], "index": index,
            "model_version": versions.index_meta(client, index).get("model_version"),
            "documents": report.rows, **totals}
