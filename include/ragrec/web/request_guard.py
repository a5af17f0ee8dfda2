"""What both HTTP services check before a request's body is read: the caller's token, then
the body's size as it streams in.

``Content-Length`` is only the client's claim and a chunked body has none, so the body is
counted while it is received and reading stops at ``max_body_bytes + 1``: the caller gets a
413 and the server never holds more than the limit (plus one network read). The token
comes first, so a caller without it gets a 401 before a byte of the body is read. Only then
does the application see the request - FastAPI parses a body before any dependency runs,
which is why neither check can be a route dependency.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragrec.web.http_errors import BadRequest, error_response

# path, headers -> why the request is refused before its body is read, or None
Refusal = Callable[[str, Headers], BadRequest | None]

DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def token_refusal(headers: Headers, token: str | None) -> BadRequest | None:
    """A 401 unless ``Authorization`` carries ``token`` (``Bearer <token>`` or, as EAS
    clients send it, the bare token); None when no token is configured."""
    if not token:
        return None
    given = headers.get("authorization", "")
    given = given[7:] if given.lower().startswith("bearer ") else given
    if hmac.compare_digest(given.encode(), token.encode()):
        return None
    return BadRequest(401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                      {"WWW-Authenticate": "Bearer"})


class RequestGuard:
    """Pure ASGI middleware: ``refusal`` first, then the body read under ``max_body_bytes``
    and handed to the application whole."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, refusal: Refusal):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refused = self.refusal(scope["path"], headers) or self._declared_too_large(headers)
        if refused is None:
            body, refused = await self._read(receive)
            if body is None and refused is None:
                return  # the client went away mid-body: nobody to answer
        if refused is not None:
            extra = dict(refused.headers or {})
            if _body_expected(headers):
                # The rest of the body stays unread; closing the connection is what stops it
                # arriving (uvicorn would otherwise read on, discarding, until it ends).
                extra["Connection"] = "close"
            response = error_response(refused.status, refused.message, extra)
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, size: int | None = None) -> BadRequest:
        told = f"{size} bytes, " if size is not None else ""
        return BadRequest(413, f"request body is {told}over the {self.max_body_bytes}-byte "
                               "limit: send less per request")

    def _declared_too_large(self, headers: Headers) -> BadRequest | None:
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large(int(length))
        return None

    async def _read(self, receive: Receive) -> tuple[bytes | None, BadRequest | None]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, self._too_large()  # and is read no further
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _body_expected(headers: Headers) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower() \
        or headers.get("content-length", "0") not in ("", "0")


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the real channel (a disconnect while streaming)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
