"""A local PAI AI Workspace model registry (API version 2021-02-04, ROA style): ListModels,
CreateModel, CreateModelVersion, with the gateway's checks (V3 signature, action/version
headers) and the registry's own (workspace required, unique model name per workspace,
unique version name per model, a URI on every version)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from servers.acs_signature import SignatureProblem, verify
from servers.json_reply import send_json

API_VERSION = "2021-02-04"
VERSIONS_PATH = re.compile(r"^/api/v1/models/(?P<model>[^/]+)/versions$")


class PaiWorkspace:
    def __init__(self, access_key_id: str = "pai-ak", access_key_secret: str = "pai-secret"):
        self.credentials = {access_key_id: access_key_secret}
        self.models: dict[str, dict] = {}  # model id -> {name, workspace, versions{}}
        self.calls: list[str] = []
        self.lock = threading.Lock()
        workspace = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status: int, payload: dict) -> None:
                payload.setdefault("RequestId", str(uuid.uuid4()))
                send_json(self, status, payload)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                versions = VERSIONS_PATH.match(parts.path)
                if parts.path == "/api/v1/models":
                    action = {"GET": "ListModels", "POST": "CreateModel"}.get(self.command)
                elif versions and self.command == "POST":
                    action = "CreateModelVersion"
                else:
                    action = None
                if action is None:
                    return self._answer(404, {"Code": "InvalidAction.NotFound",
                                              "Message": f"{self.command} {parts.path}"})
                try:
                    verify(self.command, parts.path, parts.query, self.headers, raw,
                           workspace.credentials, action, API_VERSION)
                except SignatureProblem as problem:
                    return self._answer(problem.status, {"Code": problem.code,
                                                         "Message": problem.message})
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = json.loads(raw) if raw else {}
                with workspace.lock:
                    workspace.calls.append(action)
                    status, payload = workspace._dispatch(action, query, body,
                                                          versions["model"] if versions else None)
                self._answer(status, payload)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _dispatch(self, action, query, body, model_id):
        if action == "ListModels":
            found = [{"ModelId": mid, "ModelName": m["name"], "WorkspaceId": m["workspace"]}
                     for mid, m in self.models.items()
                     if m["workspace"] == query.get("WorkspaceId")
                     and query.get("ModelName") in (None, m["name"])]
            return 200, {"Models": found, "TotalCount": len(found)}
        if action == "CreateModel":
            name, space = body.get("ModelName"), body.get("WorkspaceId")
            if not name or not space:
                return 400, {"Code": "InvalidParameter", "Message": "ModelName and WorkspaceId "
                                                                    "are required"}
            if any(m["name"] == name and m["workspace"] == space for m in self.models.values()):
                return 400, {"Code": "ModelNameAlreadyExists", "Message": name}
            new_id = f"model-{uuid.uuid4().hex[:12]}"
            self.models[new_id] = {"name": name, "workspace": space, "versions": {},
                                   "labels": body.get("Labels") or []}
            return 200, {"ModelId": new_id}
        model = self.models.get(model_id)
        if model is None:
            return 404, {"Code": "ModelNotFound", "Message": model_id}
        version = body.get("VersionName")
        if not version or not body.get("Uri"):
            return 400, {"Code": "InvalidParameter", "Message": "VersionName and Uri are "
                                                                "required"}
        if version in model["versions"]:
            return 400, {"Code": "ModelVersionAlreadyExists", "Message": version}
        model["versions"][version] = body
        return 200, {"VersionName": version}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
