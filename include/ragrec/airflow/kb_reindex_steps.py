"""kb_reindex's task bodies: Connections and Params in, ``ragrec.jobs.reindex`` does the work."""

from __future__ import annotations

import logging
from pathlib import Path

from ragrec.airflow import runtime
from ragrec.airflow.kb_ingest_steps import QualityGateFailed, batch_validator, source_uri
from ragrec.config import DagSettings
from ragrec.indexing import versions
from ragrec.jobs.reindex import (
    GateRefused,
    GateSettings,
    build,
    catch_up,
    discard,
    gate,
    record_spec,
    recorded_score,
    score,
    swap,
    traffic_gate,
)
from ragrec.retrieval import SearchSpec, SpecError

log = logging.getLogger(__name__)


def gate_spec(params: dict, client) -> SearchSpec:
    """The spec the gate scores and the API serves after go-live: the ``search_spec`` param
    (a JSON object; fields left out take the defaults), else the one the live version
    serves."""
    import json

    given = params.get("search_spec") or None
    try:
        if isinstance(given, str):
            given = json.loads(given)
        if given:
            return SearchSpec.from_dict(given)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"search_spec param: {exc}") from None
    live = versions.current_version(client, params["index"])
    return SearchSpec.recorded(versions.index_meta(client, live)) if live else SearchSpec()


def gate_settings(params: dict, client) -> GateSettings | None:
    folder = params.get("golden_dir") or DagSettings.from_env().golden_dir
    if not folder:
        return None
    return GateSettings(Path(folder), spec=gate_spec(params, client),
                        margin=float(params.get("gate_margin", 0.02)))


def baseline(params: dict) -> dict | None:
    """The live version's golden score under the gate's spec (recorded, or measured with
    its own models)."""
    client = runtime.es_client()
    settings = gate_settings(params, client)
    live = versions.current_version(client, params["index"])
    if settings is None or live is None:
        log.info("no %s: nothing to compare against", "golden set" if live else "live index")
        return None
    try:
        return score(client, live, runtime.models(), settings)
    except GateRefused as exc:
        # Only a score recorded for this very golden set and spec compares.
        recorded = recorded_score(client, live, settings)
        if recorded is None:
            log.warning("live %s: %s, and no comparable recorded score", live, exc)
        return recorded


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
    from ragrec.quality.index_check import validate_index
    from ragrec.quality.runner import QualityRunner

    report = validate_index(runtime.es_client(), runtime.source(source_uri(params)),
                            params["index"], QualityRunner(runtime.quality_docs_dir()),
                            index=candidate["index"])
    log.info("%s", report.summary())
    if not report.success:
        raise QualityGateFailed(report.summary())
    return {"documents": report.rows, "docs_path": report.docs_path}


def traffic_verdict(params: dict, client, candidate: dict, spec: SearchSpec) -> dict | None:
    """The label-free gate on the alias's held-out traffic (``traffic_gate``), or None when
    there is no live version or no held-out traffic to judge by."""
    from ragrec.eval.runner import EvalError

    live = versions.current_version(client, params["index"])
    if live is None:
        return None
    try:
        return traffic_gate(client, runtime.models(), candidate["index"], live,
                            params["index"], spec, float(params.get("gate_margin", 0.02)))
    except EvalError as exc:
        log.info("no label-free gate: %s", exc)
        return None


def retrieval_gate(params: dict, candidate: dict, live: dict | None) -> dict:
    client = runtime.es_client()
    spec = gate_spec(params, client)
    settings = gate_settings(params, client)
    if params.get("model_uri"):
        runtime.encoder_for_model(params["model_uri"])  # the candidate's models, by version
    try:
        traffic = traffic_verdict(params, client, candidate, spec)
        if settings is None:
            result = traffic or {"passed": True, "reason": "no golden set configured and no "
                                                           "held-out traffic"}
        else:
            result = gate(score(client, candidate["index"], runtime.models(), settings), live,
                          settings.margin)
            if traffic is not None:  # both where both exist: the golden set decides
                result["traffic"] = traffic
                log.info("label-free gate (reported): %s (%s)", "passed" if traffic["passed"]
                         else "would refuse", traffic["reason"])
    except GateRefused:
        discard(client, params["index"], candidate["index"])
        raise
    log.info("retrieval gate (%s): %s (%s)", spec.label,
             "passed" if result["passed"] else "REFUSED", result["reason"])
    if not result["passed"]:
        discard(client, params["index"], candidate["index"])
        raise GateRefused(f"{candidate['index']} refused: {result['reason']}; "
                          f"{params['index']} stays on its live version")
    record_spec(client, candidate["index"], spec)
    return {**result, "spec": spec.to_dict()}


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
