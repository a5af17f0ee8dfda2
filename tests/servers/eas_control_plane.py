"""A local PAI-EAS control plane (API version 2021-07-01, ROA style) for the SDK adapter.

It checks what the gateway checks (V3 signature, action/version headers, clock skew, body
hash), and keeps real service state: every UpdateService creates a new service version that
rolls out (``Updating`` for a describe or two, then ``Running``; a model path containing
"broken" ends ``Failed``), UpdateServiceVersion switches back to an earlier version.
Errors come back as the gateway's JSON (RequestId, Code, Message) with an HTTP status.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from servers.acs_signature import SignatureProblem, verify
from servers.json_reply import send_json

API_VERSION = "2021-07-01"
SERVICE_PATH = re.compile(
    r"^/api/v2/services/(?P<cluster>[^/]+)/(?P<name>[^/]+)(?P<tail>/version)?$")


class EasControlPlane:
    def __init__(self, access_key_id: str = "eas-ak", access_key_secret: str = "eas-secret",
                 rollout_polls: int = 2):
        self.credentials = {access_key_id: access_key_secret}
        self.services: dict[tuple[str, str], dict] = {}
        self.calls: list[dict] = []
        self.rollout_polls = rollout_polls
        self.lock = threading.Lock()
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status: int, payload: dict) -> None:
                send_json(self, status, payload,
                          {"x-acs-request-id": payload.get("RequestId", "")})

            def _error(self, status: int, code: str, message: str) -> None:
                self._answer(status, {"RequestId": str(uuid.uuid4()), "Code": code,
                                      "Message": message})

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                match = SERVICE_PATH.match(parts.path)
                if not match:
                    return self._error(404, "InvalidAction.NotFound", f"no API at {parts.path}")
                action = {("GET", None): "DescribeService", ("PUT", None): "UpdateService",
                          ("PUT", "/version"): "UpdateServiceVersion"}.get(
                    (self.command, match["tail"]))
                if action is None:
                    return self._error(404, "InvalidAction.NotFound", "unsupported method")
                try:
                    verify(self.command, parts.path, parts.query, self.headers, body,
                           plane.credentials, action, API_VERSION)
                except SignatureProblem as problem:
                    return self._error(problem.status, problem.code, problem.message)
                key = (match["cluster"], match["name"])
                with plane.lock:
                    plane.calls.append({"action": action, "service": key,
                                        "body": body.decode() if body else ""})
                    service = plane.services.get(key)
                    if service is None:
                        return self._error(404, "ServiceNotFound",
                                           f"service {key[1]} not found in {key[0]}")
                    status, payload = plane._dispatch(action, service, body)
                self._answer(status, payload)

            do_GET = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add_service(self, cluster: str, name: str, config: dict) -> None:
        self.services[(cluster, name)] = {"name": name, "versions": [config], "current": 1,
                                          "status": "Running", "polls_left": 0}

    def _dispatch(self, action: str, service: dict, body: bytes) -> tuple[int, dict]:
        request_id = str(uuid.uuid4())
        if action == "DescribeService":
            if service["status"] == "Updating":
                service["polls_left"] -= 1
                if service["polls_left"] <= 0:
                    config = service["versions"][service["target"] - 1]
                    if "broken" in str(config.get("model_path", "")):
                        service["status"] = "Failed"
                    else:
                        service["status"], service["current"] = "Running", service["target"]
            config = service["versions"][service["current"] - 1]
            return 200, {"RequestId": request_id, "ServiceName": service["name"],
                         "Status": service["status"], "CurrentVersion": service["current"],
                         "LatestVersion": len(service["versions"]),
                         "ServiceConfig": json.dumps(config)}
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return 400, {"RequestId": request_id, "Code": "InvalidParameter",
                         "Message": "body is not JSON"}
        if action == "UpdateService":
            if not isinstance(payload, dict) or not (payload.get("model_path")
                                                     or payload.get("containers")):
                return 400, {"RequestId": request_id, "Code": "InvalidParameter",
                             "Message": "service config needs model_path or containers"}
            service["versions"].append(payload)
            service.update(status="Updating", target=len(service["versions"]),
                           polls_left=self.rollout_polls)
            return 200, {"RequestId": request_id, "Message": "Service is now updating"}
        version = payload.get("Version") if isinstance(payload, dict) else None
        if not isinstance(version, int) or not 1 <= version <= len(service["versions"]):
            return 400, {"RequestId": request_id, "Code": "InvalidParameter",
                         "Message": f"no service version {version!r}"}
        service.update(status="Updating", target=version, polls_left=1)
        service["versions"][version - 1] = dict(service["versions"][version - 1])
        return 200, {"RequestId": request_id, "Message": "Service is now switching version"}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
