"""quality_monitor's task bodies."""

from __future__ import annotations

import logging

from ragrec.airflow import runtime
from ragrec.airflow.kb_ingest_steps import source_uri
from ragrec.airflow.kb_reindex_steps import gate_settings
from ragrec.quality import monitor
from ragrec.quality.runner import QualityRunner

log = logging.getLogger(__name__)


class DataQualityFailed(RuntimeError):
    pass


def chunks(params: dict) -> dict:
    embedder, _ = runtime.encoder()
    limit = getattr(embedder, "max_input_tokens", None) or 512
    result = monitor.check_chunks(runtime.es_client(), params["index"],
                                  QualityRunner(runtime.quality_docs_dir()), limit)
    log.info("chunks: %s", "ok" if result["success"] else result["failures"])
    return result


def documents(params: dict) -> dict:
    result = monitor.check_documents(runtime.es_client(), runtime.source(source_uri(params)),
                                     params["index"], QualityRunner(runtime.quality_docs_dir()),
                                     float(params.get("max_age_hours") or 0))
    log.info("documents: %s", "ok" if result["success"] else result["failures"])
    return result


def golden(params: dict) -> dict | None:
    """The golden set on the live version under the spec it serves, vs go-live."""
    from ragrec.retrieval import EncoderMismatch, NoReranker

    client = runtime.es_client()
    settings = gate_settings(params, client)
    if settings is None:
        log.info("no golden set configured")
        return None
    try:
        return monitor.check_golden(client, params["index"], runtime.models(),
                                    settings.golden_dir, settings.spec, settings.margin)
    except (EncoderMismatch, NoReranker) as exc:
        raise DataQualityFailed(f"{params['index']}: the golden set cannot be ranked as "
                                f"served: {exc}") from None


def alert(params: dict, results: dict) -> dict:
    from ragrec.airflow.notifiers import deliver

    message = monitor.quality_alert(params["index"], results)
    if message is None:
        return {"alerted": [], "failed": []}
    channels = deliver(message)
    failed = [name for name, r in results.items() if r and not r.get("success", True)]
    raise DataQualityFailed(f"{message.title} ({', '.join(failed)}); alerted via "
                            f"{channels or 'no channel'}\n{message.text}")
