"""ragrec's recommendation items and logged events as AIRec documents (``airec_sync``
pushes them through ``ragrec.cloud.airec``): fields within the service's size rules (5 KB a
field), ``cmd`` ``add`` or ``delete``, items keyed by ``item_id`` + ``item_type``.

Behaviours (the ``behavior`` table) are ragrec's logged events in AIRec's shape: ``bhv_type``
``expose`` for an impression, ``click``, ``like`` for a thumbs-up or a source that helped (a
thumbs-down has no AIRec type and stays in ragrec); ``trace_id`` names who served the list
(``ragrec``: AIRec reserves ``Alibaba`` for its own results) and ``trace_info`` carries the
response's own trace id; ``bhv_time`` is the event time in unix seconds; ``page_id`` is the
surface (search, chat, recommend_user, ...), ``position`` the place in the response.
"""

from __future__ import annotations

ITEM_TYPE = "article"


def _fit(value: str, limit: int) -> str:
    data = value.encode("utf-8")[:limit]
    return data.decode("utf-8", errors="ignore")


def item_document(row: dict, scene_id: str) -> dict:
    """An item-table document for one feature-table row (fields within the size rules)."""
    from datetime import datetime

    modified = row.get("last_modified")
    pub_time = int(datetime.fromisoformat(modified).timestamp()) if modified else 0
    return {"cmd": "add", "fields": {
        "item_id": row["item_id"], "item_type": ITEM_TYPE, "scene_id": scene_id,
        "title": _fit(row.get("title") or row["doc_id"], 1000),
        "content": _fit(row.get("excerpt") or "", 4000),
        "pub_time": str(pub_time), "status": "1",
        "tags": _fit(row.get("model_version") or "", 200),
    }}


TRACE_PROVIDER = "ragrec"
BEHAVIOUR_TYPES = {"impression": "expose", "click": "click", "up": "like", "helped": "like"}


def behaviour_document(event: dict, item: str, scene_id: str) -> dict | None:
    """A behaviour-table document for one stored event (``item``: its AIRec item id); None
    for an event AIRec has no type for."""
    from datetime import datetime

    kind = BEHAVIOUR_TYPES.get(event["type"])
    if kind is None:
        return None
    stamp = datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00"))
    fields = {"trace_id": TRACE_PROVIDER, "trace_info": event.get("trace_id") or "",
              "platform": "other", "scene_id": event.get("scene_id") or scene_id,
              "user_id": _fit(event["user_id"], 200), "item_id": item,
              "item_type": ITEM_TYPE, "bhv_type": kind, "bhv_value": "1",
              "bhv_time": str(int(stamp.timestamp())),
              "page_id": _fit(event.get("surface") or "", 50)}
    if event.get("position") is not None:
        fields["position"] = str(event["position"])
    return {"cmd": "add", "fields": fields}


def delete_document(item: str) -> dict:
    return {"cmd": "delete", "fields": {"item_id": item, "item_type": ITEM_TYPE}}
