"""model_feedback's own task bodies (training, evaluation and registration are
``train_steps``'): whether enough new traffic came in since the last version trained from
it, and the mark that says how far that training read. The mark lives in the events
index's ``_meta`` (``feedback_trained_until``, a ``logged_at`` time), beside airec_sync's."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ragrec.airflow import runtime

log = logging.getLogger(__name__)
MARK = "feedback_trained_until"


def enough_traffic(params: dict) -> dict:
    """``{"enough", "sessions", "since", "until"}``: search answers logged since the mark,
    against ``min_sessions``; ``until`` is now, the mark to set once a version is
    registered."""
    from ragrec.recs.events import events_index, events_meta, sessions_logged_since

    client = runtime.es_client()
    alias = params["index"]
    until = datetime.now(UTC).isoformat()
    since = events_meta(client, alias).get(MARK)
    sessions = sessions_logged_since(client, alias, since)
    needed = int(params.get("min_sessions") or 0)
    log.info("%d search sessions logged in %s since %s (%d needed)", sessions,
             events_index(alias), since or "the start", needed)
    return {"enough": sessions >= needed and sessions > 0, "sessions": sessions,
            "since": since, "until": until}


def mark_trained(params: dict, traffic: dict) -> dict:
    from ragrec.recs.events import update_events_meta

    update_events_meta(runtime.es_client(), params["index"], **{MARK: traffic["until"]})
    return {"index": params["index"], MARK: traffic["until"]}
