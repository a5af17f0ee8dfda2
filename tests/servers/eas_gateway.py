"""A stand-in for the PAI-EAS gateway in front of one service: only the service's address
``<prefix>/api/predict/<service>`` and the paths below it exist, the token must come bare in
``Authorization`` (as EAS checks it), and the request goes on to the service with the
address stripped (``.../api/predict/svc/v1/rerank`` -> ``/v1/rerank``, the address itself
-> ``/``). Everything else is the gateway's own plain-text 404, never the service's."""

from __future__ import annotations

import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from servers.background import InBackground


class EasGateway(InBackground):
    def __init__(self, upstream: str, service: str, token: str, prefix: str = "/eas/gw"):
        self.address = f"{prefix.rstrip('/')}/api/predict/{service}"
        self.forwarded: list[str] = []
        self.refused: list[str] = []
        gateway = self
        client = httpx.Client(base_url=upstream, timeout=120)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str]):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                if path != gateway.address and not path.startswith(gateway.address + "/"):
                    gateway.refused.append(path)
                    return self._reply(404, b"404 page not found", {"Content-Type": "text/plain"})
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), token.encode()):
                    return self._reply(401, b"Unauthorized", {"Content-Type": "text/plain"})
                rest = path[len(gateway.address):] or "/"
                gateway.forwarded.append(rest)
                answer = client.request(method, rest, content=body, headers={
                    "Content-Type": self.headers.get("Content-Type", "application/json"),
                    "Authorization": given})
                headers = {k: v for k, v in answer.headers.items()
                           if k.lower() in ("content-type", "x-model-version", "retry-after")}
                self._reply(answer.status_code, answer.content, headers)

            def do_GET(self):  # noqa: N802
                self._handle("GET")

            def do_POST(self):  # noqa: N802
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.address}"
