"""The one error shape of both HTTP services (``serve-api`` and ``serve-model``):
``{"error": {"code": <status>, "message": <what to fix>}}`` - for the services' own refusals
and for the framework's too (unknown route, wrong method, a body that is not JSON or not
UTF-8, schema violations), so a client parses one shape whatever went wrong - and how that
shape is described in the OpenAPI documents."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ragrec.http")


class BadRequest(Exception):
    """A request the service refuses: answered as ``status`` with ``message`` (never a 500)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return json_response({"error": {"code": status, "message": message}}, status, headers)


class ErrorDetail(BaseModel):
    code: int
    message: str


class ErrorBody(BaseModel):
    """Every error of both services."""

    error: ErrorDetail


_MEANINGS = {
    400: "The body cannot be used: not JSON, not UTF-8, nested too deeply, or a field's value "
         "is wrong",
    401: "Missing or wrong token (send `Authorization: Bearer <token>`)",
    403: "The route is switched off on this server",
    404: "No such route, document, index, service or model",
    409: "Conflicts with the server's state (model version, a swap in progress)",
    413: "The body, or a list or text in it, is over the server's limit",
    415: "The body is not sent as `application/json`",
    422: "The request does not match the schema (the message names the field)",
    500: "A fault in the server (logged); never the answer to bad input",
    502: "An upstream service (Elasticsearch, the LLM) refused or failed",
    503: "Elasticsearch or the model endpoint is unreachable; retry after `Retry-After`",
}


def error_responses(*codes: int) -> dict[int | str, dict]:
    """``responses=`` for a route: each status it can answer, with the error envelope."""
    return {code: {"model": ErrorBody, "description": _MEANINGS[code]} for code in codes}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = list(error.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]  # where it came from; the field name follows
        where = ".".join(str(p) for p in loc)
        message = str(error.get("msg")).removeprefix("Value error, ")  # our validators' own
        if error.get("type") == "json_invalid":
            where = ""
            message = f"request body is not valid JSON: {error.get('ctx', {}).get('error')}"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _not_json(request: Request, exc: RequestValidationError) -> bool:
    """A body that fails as a whole because it was sent as another media type."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    whole_body = [e for e in exc.errors() if tuple(e.get("loc", ())) == ("body",)]
    return bool(media) and not (media == "application/json" or media.endswith("+json")) \
        and bool(whole_body)


def _unparsable_body(exc: HTTPException) -> str:
    """Why FastAPI could not read the body (its own answer says only 'error parsing')."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"request body is not valid UTF-8: {cause.reason} at byte {cause.start}"
    if isinstance(cause, RecursionError):
        return "request body is nested too deeply to parse: flatten the JSON"
    if isinstance(cause, ValueError):
        return f"request body is not valid JSON: {cause}"
    return "request body could not be read as JSON"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in the envelope, the framework's included."""

    @app.exception_handler(BadRequest)
    async def refused(_request: Request, exc: BadRequest):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if _not_json(request, exc):
            return error_response(415, "send the body as JSON with 'Content-Type: "
                                       "application/json'")
        return error_response(422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def framework(request: Request, exc: HTTPException):
        status = exc.status_code
        if status == 404 and exc.detail == "Not Found":  # the router's: no such path
            message = f"no route {request.url.path!r}: see /openapi.json for the routes"
        elif status == 405:
            allowed = _allowed_methods(request)
            message = f"{request.method} is not allowed on {request.url.path!r}; use {allowed}"
            return error_response(405, message, {**(exc.headers or {}), "Allow": allowed})
        elif status == 400 and exc.__cause__ is not None:
            message = _unparsable_body(exc)
        else:
            message = str(exc.detail)
        return error_response(status, message, exc.headers)


def _allowed_methods(request: Request) -> str:
    """Every method the path has; Starlette's own Allow names only the first route's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


class FaultBarrier:
    """Pure ASGI middleware: a fault in a handler becomes a logged 500 in the envelope (not a
    traceback, nor a dropped connection) - unless the answer had already begun streaming."""

    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("request failed")
            if started:
                raise
            response = error_response(500, f"internal error in the {self.service} (see its "
                                            "log)")
            await response(scope, receive, send)
