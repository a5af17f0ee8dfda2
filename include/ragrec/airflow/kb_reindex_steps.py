"""kb_reindex's task bodies: Connections and Params in, ``ragrec.reindex`` does the work."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ragrec.airflow import runtime
from ragrec.airflow.kb_ingest_steps import QualityGateFailed, batch_validator, source_uri
from ragrec.indexing import versions
from ragrec.reindex import (
    GateRefused,
    GateSettings,
    build,
    catch_up,
    discard,
    gate,
    recorded_score,
    score,
    swap,
)

log = logging.getLogger(__name__)


def gate_settings(params: dict) -> GateSettings | None:
    folder = params.get("golden_dir") or os.environ.get("RAGREC_GOLDEN_DIR")
    if not folder:
        return None
    return GateSettings(Path(folder), mode=params.get("gate_mode") or "hybrid",
                        margin=float(params.get("gate_margin", 0.02)))


def baseline(params: dict) -> dict | None:
    """The live version's golden score (recorded, or measured with its own model)."""
    settings = gate_settings(params)
    client = runtime.es_client()
    live = versions.current_version(client, params["index"])
    if settings is None or live is None:
        log.info("no %s: nothing to compare against", "golden set" if live else "live index")
        return None
    model_version = versions.index_meta(client, live).get("model_version")
    embedder = runtime.encoder_for_version(model_version)
    if embedder is None:
        # Only a score recorded for this very golden set and mode compares.
        recorded = recorded_score(client, live, settings)
        if recorded is None:
            log.warning("live %s (model %s): no encoder for its queries and no comparable "
                        "recorded score", live, model_version)
        return recorded
    return score(client, live, embedder, settings)


def build_candidate(params: dict) -> dict:
    embedder, tokenizer = runtime.encoder_for_model(params.get("model_uri") or None)
    validator = batch_validator(embedder)
    summary = build(runtime.es_client(), embedder, tokenizer,
                    runtime.source(source_uri(params)), params["index"], validator)
    log.info("built %s with %s: %d documents, %d chunks (%d reused vectors), %d quarantined",
             summary["index"], summary["model_version"], summary["docs_seen"],
             summary["chunks_indexed"], summary["chunks_reused"], summary["docs_quarantined"])
    return summary


def validate_candidate(params: dict, candidate: dict) -> dict:
    from ragrec.batch_ingest import validate_index
    from ragrec.quality.runner import QualityRunner

    report = validate_index(runtime.es_client(), runtime.source(source_uri(params)),
                            params["index"], QualityRunner(runtime.quality_docs_dir()),
                            index=candidate["index"])
    log.info("%s", report.summary())
    if not report.success:
        raise QualityGateFailed(report.summary())
    return {"documents": report.rows, "docs_path": report.docs_path}


def retrieval_gate(params: dict, candidate: dict, live: dict | None) -> dict:
    settings = gate_settings(params)
    client = runtime.es_client()
    if settings is None:
        return {"passed": True, "reason": "no golden set configured"}
    embedder, _ = runtime.encoder_for_model(params.get("model_uri") or None)
    result = gate(score(client, candidate["index"], embedder, settings), live, settings.margin)
    log.info("retrieval gate: %s (%s)", "passed" if result["passed"] else "REFUSED",
             result["reason"])
    if not result["passed"]:
        discard(client, params["index"], candidate["index"])
        raise GateRefused(f"{candidate['index']} refused: {result['reason']}; "
                          f"{params['index']} stays on its live version")
    return result


def swap_alias(params: dict, candidate: dict) -> dict:
    return swap(runtime.es_client(), params["index"], candidate["index"],
                int(params.get("keep_versions", 2)))


def catch_up_and_publish(params: dict) -> dict:
    client = runtime.es_client()
    embedder, tokenizer = runtime.encoder_for_index(client, params["index"])
    summary = catch_up(client, embedder, tokenizer, runtime.source(source_uri(params)),
                       params["index"])
    live = versions.current_version(client, params["index"])
    return {"alias": params["index"], "index": live,
            "model_version": versions.index_meta(client, live).get("model_version"),
            "caught_up": summary["docs_new"] + summary["docs_changed"] + summary["docs_deleted"]}


def discard_failed(params: dict) -> list[str]:
    """After a failure: every version newer than the live one is an unfinished candidate."""
    client = runtime.es_client()
    return versions.drop_orphans(client, params["index"])
