"""A local AIRec OpenAPI (2020-11-26, ROA) for the SDK adapter: PushDocument and
ModifyRankingModel.

It checks what the service checks: the V3 signature, action/version headers, the instance,
a JSON array body of at most 800 documents and 1 MB, documents of at most 10 KB and fields
of at most 5 KB, ``cmd`` in add/update/delete, and the item table's key (``item_id`` +
``item_type``). Behaviour documents need the behavior table's required fields: ``trace_id``
(with ``trace_info`` when it is ``Alibaba``), ``platform``, ``scene_id`` (no colon),
``user_id``, ``item_id`` (at most 50 characters), ``item_type`` of the item types,
``bhv_type`` of the behaviour types, ``bhv_value``, and ``bhv_time`` as 10-digit unix
seconds. A custom ranking model's ``custom_ranker_url`` must be an absolute http(s) URL,
and one on a ranker route must answer (``ranker_url_problem``). It keeps the item table,
the behaviours and the ranking models, and answers like the service (``{"requestId",
"result", "code", "message"}``) with an HTTP status.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit
from urllib.request import Request, urlopen

from servers.acs_signature import SignatureProblem, verify
from servers.background import InBackground
from servers.json_reply import send_json

API_VERSION = "2020-11-26"
PUSH = re.compile(r"^/v2/openapi/instances/(?P<instance>[^/]+)/tables/(?P<table>[^/]+)"
                  r"/actions/bulk$")
RANKER = re.compile(r"^/v2/openapi/instances/(?P<instance>[^/]+)/ranking-models/(?P<model>[^/]+)$")


ITEM_TYPES = {"image", "article", "video", "shortvideo", "item", "recipe", "audio"}
BEHAVIOUR_TYPES = {"expose", "click", "like", "comment", "collect", "stay", "cart", "buy",
                   "evaluate", "share"}
BEHAVIOUR_REQUIRED = ("trace_id", "platform", "scene_id", "user_id", "item_id", "item_type",
                      "bhv_type", "bhv_value", "bhv_time")


def behaviour_problem(fields: dict) -> str | None:
    missing = [f for f in BEHAVIOUR_REQUIRED if not str(fields.get(f) or "").strip()]
    if missing:
        return f"behaviour documents need {', '.join(missing)}"
    if fields["trace_id"] == "Alibaba" and not fields.get("trace_info"):
        return "trace_info is required when trace_id is Alibaba"
    if ":" in fields["scene_id"]:
        return "scene_id may not contain a colon"
    if len(fields["item_id"]) > 50:
        return "item_id is over 50 characters"
    if fields["item_type"] not in ITEM_TYPES:
        return f"unknown item_type {fields['item_type']}"
    if fields["bhv_type"] not in BEHAVIOUR_TYPES:
        return f"unknown bhv_type {fields['bhv_type']}"
    if not re.fullmatch(r"\d{10}", str(fields["bhv_time"])):
        return "bhv_time must be a 10-digit unix time in seconds"
    return None


def ranker_url_problem(meta: dict) -> str | None:
    """A custom ranking model needs an absolute http(s) ``custom_ranker_url``; one on a
    ranker route (``.../rank``) must answer an empty candidate list with a score list (the
    service calls it with the candidates of every request)."""
    if meta.get("type") != "custom":
        return None
    url = meta.get("custom_ranker_url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return f"custom_ranker_url must be an absolute http(s) URL, not {url!r}"
    if parts.path.endswith("/rank"):
        try:
            with urlopen(Request(url, data=json.dumps({"user": {"id": "airec-check"},
                                                       "candidates": []}).encode(),
                                 headers={"Content-Type": "application/json"}),
                         timeout=10) as answer:
                scores = json.loads(answer.read()).get("scores")
        except (OSError, ValueError) as exc:
            return f"custom_ranker_url {url} does not answer: {exc}"
        if scores != []:
            return f"custom_ranker_url {url} answered no score list"
    return None


class AirecServer(InBackground):
    def __init__(self, instance_id: str = "airec-cn-test", access_key_id: str = "airec-ak",
                 access_key_secret: str = "airec-secret", ranking_model_id: str = "rm-1"):
        self.instance_id = instance_id
        self.credentials = {access_key_id: access_key_secret}
        self.items: dict[tuple[str, str], dict] = {}
        self.behaviours: list[dict] = []
        self.rankers: dict[str, dict] = {ranking_model_id: {"meta": {}}}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status: int, code: str = "0", message: str = "success",
                        **extra) -> None:
                send_json(self, status, {"requestId": str(uuid.uuid4()),
                                         "result": status == 200, "code": code,
                                         "message": message, **extra})

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                push, ranker = PUSH.match(parts.path), RANKER.match(parts.path)
                if push and self.command == "POST":
                    action, match = "PushDocument", push
                elif ranker and self.command == "PUT":
                    action, match = "ModifyRankingModel", ranker
                else:
                    return self._answer(404, "InvalidAction.NotFound", f"no API at {parts.path}")
                try:
                    verify(self.command, parts.path, parts.query, self.headers, body,
                           server.credentials, action, API_VERSION)
                except SignatureProblem as problem:
                    return self._answer(problem.status, problem.code, problem.message)
                if unquote(match["instance"]) != server.instance_id:
                    return self._answer(404, "InstanceNotExist",
                                        f"instance {match['instance']} does not exist")
                try:
                    payload = json.loads(body or b"null")
                except ValueError:
                    return self._answer(400, "InvalidParameter", "body is not JSON")
                with server.lock:
                    server.requests.append({"action": action, "bytes": len(body),
                                            "body": payload})
                    if action == "PushDocument":
                        status, code, message = server._push(unquote(match["table"]), payload,
                                                              len(body))
                    else:
                        status, code, message = server._ranker(unquote(match["model"]), payload)
                self._answer(status, code, message)

            do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"

    def _push(self, table: str, docs, size: int) -> tuple[int, str, str]:
        if table not in ("user", "item", "behavior"):
            return 400, "InvalidParameter", f"unknown table {table}"
        if not isinstance(docs, list) or not docs:
            return 400, "InvalidParameter", "body must be a non-empty JSON array of documents"
        if len(docs) > 800 or size > 1_000_000:
            return 400, "DocumentsTooMany", "at most 800 documents and 1 MB per request"
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("cmd") not in ("add", "update", "delete"):
                return 400, "InvalidParameter", "each document needs cmd add/update/delete"
            fields = doc.get("fields")
            if not isinstance(fields, dict):
                return 400, "InvalidParameter", "each document needs a fields object"
            if len(json.dumps(doc, ensure_ascii=False).encode()) > 10_000:
                return 400, "DocumentTooLarge", "a document is over 10 KB"
            if any(len(str(v).encode()) > 5_000 for v in fields.values()):
                return 400, "FieldTooLarge", "a field is over 5 KB"
            if table == "item" and not (fields.get("item_id") and fields.get("item_type")):
                return 400, "InvalidParameter", "item documents need item_id and item_type"
            if table == "behavior":
                problem = behaviour_problem(fields)
                if problem:
                    return 400, "InvalidParameter", problem
        if table == "behavior":
            self.behaviours.extend(dict(doc["fields"]) for doc in docs)
            return 200, "0", "success"
        for doc in docs:
            fields = doc["fields"]
            key = (fields["item_id"], fields["item_type"])
            if doc["cmd"] == "delete":
                self.items.pop(key, None)
            elif doc["cmd"] == "update":
                self.items.setdefault(key, {}).update(fields)
            else:
                self.items[key] = dict(fields)
        return 200, "0", "success"

    def _ranker(self, model: str, payload) -> tuple[int, str, str]:
        if model not in self.rankers:
            return 404, "RankingModelNotExist", f"ranking model {model} does not exist"
        if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
            return 400, "InvalidParameter", "body needs a meta object"
        problem = ranker_url_problem(payload["meta"])
        if problem:
            return 400, "InvalidParameter", problem
        self.rankers[model] = payload
        return 200, "0", "success"

