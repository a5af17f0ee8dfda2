"""airec_sync's task bodies: the feature table in Elasticsearch, then AIRec when configured.

Connection ``airec_default``: host = the AIRec endpoint (``http://`` allowed for local
servers), login/password = AccessKey; extra ``instance_id``, ``ranking_model_id``,
``region_id``, ``scene_id``. Without it, the ``AIREC_*`` variables; without those, only the
feature table is written (the embedded default).
"""

from __future__ import annotations

import logging

from ragrec.airflow import runtime
from ragrec.airflow.connections import airec_settings
from ragrec.cloud.airec import AirecClient
from ragrec.recs.airec_documents import behaviour_document, delete_document, item_document

log = logging.getLogger(__name__)


def alias_of(params: dict, triggering_events) -> str:
    """The alias the triggering index Asset event names, else the ``index`` Param."""
    for events in (triggering_events or {}).values():
        for event in events:
            alias = (event.extra or {}).get("alias")
            if alias:
                return alias
    return params["index"]


def feature_table(alias: str) -> dict:
    from ragrec.recs.item_table import sync_feature_table

    result = sync_feature_table(runtime.es_client(), alias)
    log.info("feature table %s: %d items, %d changed, %d deleted", result["table"],
             result["items"], result["changed"], result["deleted"])
    return result


def push_to_airec(alias: str, table: dict) -> dict:
    from ragrec.recs.item_table import mark_pushed, pending_for_airec

    settings = airec_settings()
    if not settings.configured:
        log.info("AIRec is not configured: the feature table in Elasticsearch is the output")
        return {"airec": False}
    client = runtime.es_client()
    rows = pending_for_airec(client, alias)
    documents = [item_document(r, settings.scene_id) for r in rows]
    documents += [delete_document(i) for i in table.get("deleted_ids", [])]
    airec = AirecClient(settings)
    pushed = airec.push(documents) if documents else 0
    mark_pushed(client, alias, rows)
    ranker = None
    if settings.ranking_model_id:
        from ragrec.airflow.hooks import RagrecModelEndpointHook

        url, _, extra = RagrecModelEndpointHook().endpoint()
        if url:
            ranker, version = ranker_url(client, alias, url, extra.get("protocol"))
            airec.point_ranker_at(ranker, version)
    log.info("AIRec: pushed %d documents (%d items, %d deletions)", pushed, len(rows),
             len(table.get("deleted_ids", [])))
    return {"airec": True, "pushed": pushed, "items": len(rows),
            "deleted": len(table.get("deleted_ids", [])), "custom_ranker_url": ranker}


def ranker_url(client, alias: str, endpoint: str, protocol: str | None) -> tuple[str, str]:
    """Where AIRec's custom ranking model calls, and the version it is labelled with: the
    model endpoint's ``/rank`` with the deployment's learned ranker (by its production
    stage, so a retrain needs no re-pointing) once ``rec_train`` installed one, else the
    endpoint's rerank route with the served model version."""
    from urllib.parse import quote

    from ragrec.embedding.model_endpoint import EndpointUrls
    from ragrec.recs.setup import read_setup

    urls = EndpointUrls.parse(endpoint, protocol)
    learned = (read_setup(client, alias, fresh=True) or {}).get("ranker")
    if learned:
        return f"{urls.rank}?ranker={quote(learned['reference'])}", learned["version"]
    embedder, _ = runtime.encoder()
    return urls.rerank, embedder.model_version


def push_behaviours(alias: str, items: dict) -> dict:
    """The events logged since the last push, to AIRec's behavior table, after the items
    they name. The point reached is recorded after every request, so a failed run resumes
    where it stopped."""
    from ragrec.recs.item_table import item_id, mark_behaviours_pushed, pending_behaviours

    settings = airec_settings()
    if not settings.configured or not items.get("airec"):
        return {"airec": False}
    client = runtime.es_client()
    events = pending_behaviours(client, alias)
    pairs = [(e, behaviour_document(e, item_id(e["doc_id"]), settings.scene_id))
             for e in events]
    kept = [(e, d) for e, d in pairs if d is not None]

    def sent(count: int) -> None:
        # One request's events share a logged_at: record only a point every event at or
        # before it has been sent (a later request's failure then re-sends, never skips).
        following = kept[count][0].get("logged_at") if count < len(kept) else None
        stamps = [e["logged_at"] for e, _ in kept[:count] if e.get("logged_at")
                  and (following is None or e["logged_at"] < following)]
        if stamps:
            mark_behaviours_pushed(client, alias, max(stamps))

    pushed = AirecClient(settings).push([d for _, d in kept], table="behavior", sent=sent)
    log.info("AIRec: pushed %d behaviours (%d events; %d without an AIRec type kept here)",
             pushed, len(events), len(events) - len(kept))
    return {"behaviours": pushed, "events": len(events), "skipped": len(events) - len(kept)}
