"""The surfaces' HTTP API (``ragrec serve-api``): search, RAG Q&A, recommendations, events,
and a small web page - one service over the same index and models.

Routes
  GET|POST /search              BM25 / dense / hybrid, filters, rerank, highlights
  POST /ask                     grounded answer with numbered citations (JSON or SSE stream)
  GET  /recommend/item/{doc_id} more like this (by vector, one per document, MMR)
  GET  /recommend/user/{user}   profile from recent clicks (time decay), seen excluded, reranked
  POST /events                  impressions / clicks -> ``<alias>-events``
  GET  /health                  index, model version behind the alias, what is configured
  GET  /                        the web page; /openapi.json, /docs

Auth: ``Authorization: Bearer <token>`` on every route but /health, / and the page's static
files, when ``RAGREC_API_TOKEN`` is set. Bad input is a 4xx with ``{"error": {"code",
"message"}}``, never a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Literal

import orjson
from elasticsearch import ApiError, Elasticsearch
from elasticsearch import ConnectionError as EsConnectionError
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ragrec.api import events as event_log
from ragrec.api import recommend
from ragrec.api.answer import (
    REFUSAL,
    LlmError,
    LlmSettings,
    Passage,
    build_messages,
    cited_numbers,
    extractive_answer,
    stream_chat,
)
from ragrec.api.query_models import ModelUnavailable, QueryModels
from ragrec.api.search import Searcher, SearchFilters, SearchQuery
from ragrec.retrieval import EncoderMismatch
from ragrec.serving.requests import BadRequest

log = logging.getLogger("ragrec.api")


@dataclass(frozen=True)
class ApiConfig:
    index: str = "ragrec-kb"
    token: str | None = None
    max_body_bytes: int = 256 * 1024
    min_support: float = 0.3  # best question-passage cosine needed to answer
    llm: LlmSettings | None = None

    @classmethod
    def from_env(cls, environ=os.environ, index: str | None = None) -> ApiConfig:
        return cls(index=index or environ.get("RAGREC_API_INDEX", "ragrec-kb"),
                   token=environ.get("RAGREC_API_TOKEN") or None,
                   min_support=float(environ.get("RAGREC_ANSWER_MIN_SUPPORT", "0.3")),
                   llm=LlmSettings.from_env(environ))


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=20, description="passages given to the answer")
    mode: Literal["bm25", "dense", "hybrid"] = "hybrid"
    rerank: bool = False
    filters: SearchFilters = Field(default_factory=SearchFilters)
    stream: bool = Field(False, description="server-sent events instead of one JSON")


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=200)
    doc_id: str = Field(min_length=1, max_length=1000)
    type: Literal["impression", "click"]
    query: str | None = Field(None, max_length=2000)
    surface: str | None = Field(None, max_length=50)
    ts: str | None = Field(None, description="ISO 8601; default now")


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=event_log.MAX_EVENTS)


def _json(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
                    status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"error": {"code": status, "message": message}}, status, headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = list(error.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]  # where it came from; the field name follows
        where = ".".join(str(p) for p in loc)
        parts.append(f"{where or 'request'}: {error.get('msg')}")
    return "; ".join(parts)


def create_app(client: Elasticsearch, models: QueryModels,
               config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig()
    searcher = Searcher(client, models)
    alias = config.index
    if not config.token:
        log.warning("RAGREC_API_TOKEN is not set: the API accepts any caller")
    app = FastAPI(title="ragrec search API", version="1",
                  description="Search, grounded Q&A and recommendations over the ragrec "
                              "index, with the custom models. Errors: "
                              '{"error": {"code", "message"}}.')

    def authorised(request: Request) -> None:
        if not config.token:
            return
        given = request.headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else given
        if not hmac.compare_digest(given.encode(), config.token.encode()):
            raise BadRequest(401, "missing or wrong token: send 'Authorization: Bearer "
                                  "<token>'")

    guard = [Depends(authorised)]

    @app.exception_handler(BadRequest)
    async def bad_request(_request: Request, exc: BadRequest):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @app.exception_handler(EncoderMismatch)
    async def mismatch(_request: Request, exc: EncoderMismatch):
        return _error(409, str(exc))

    @app.exception_handler(ModelUnavailable)
    async def model_down(_request: Request, exc: ModelUnavailable):
        return _error(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(EsConnectionError)
    async def es_down(_request: Request, exc: EsConnectionError):
        return _error(503, f"Elasticsearch is unreachable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(ApiError)
    async def es_refused(_request: Request, exc: ApiError):
        if exc.meta.status == 404:
            return _error(404, f"index {alias!r} does not exist yet: run kb_ingest first")
        return _error(502, f"Elasticsearch refused the query: {exc.message}")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > config.max_body_bytes:
            return _error(413, f"request body is {length} bytes; the limit is "
                               f"{config.max_body_bytes}")
        try:
            return await call_next(request)
        except Exception:  # noqa: BLE001 - logged; the caller gets a message, not a trace
            log.exception("request failed")
            return _error(500, "internal error in the search API (see its log)")

    @app.post("/search", dependencies=guard, summary="Search the index")
    def search_post(body: SearchQuery):
        return _json(searcher.search(alias, body))

    @app.get("/search", dependencies=guard, summary="Search the index (query string)")
    def search_get(q: str = Query(min_length=1, max_length=2000),
                   mode: Literal["bm25", "dense", "hybrid"] = "hybrid",
                   fusion: Literal["rrf", "convex"] = "rrf",
                   k: int = Query(10, ge=1, le=50), rerank: bool = False,
                   doc_id: Annotated[list[str] | None, Query()] = None):
        query = SearchQuery(query=q, mode=mode, fusion=fusion, k=k, rerank=rerank,
                            filters=SearchFilters(doc_id=doc_id))
        return _json(searcher.search(alias, query))

    def retrieve(body: AskRequest) -> tuple[list[Passage], object, str]:
        result = searcher.search(alias, SearchQuery(
            query=body.question, mode=body.mode, k=body.k, rerank=body.rerank,
            filters=body.filters, highlight=False))
        version = result["model_version"]
        question = models.encode([body.question], version)[0]
        hits = result["hits"]
        if not hits:
            return [], question, version
        vectors = models.encode([h["text"] for h in hits], version)
        support = vectors @ question
        passages = [Passage(number=i + 1, doc_id=h["doc_id"], title=h["title"], text=h["text"],
                            chunk_id=h["id"], support=round(float(s), 4))
                    for i, (h, s) in enumerate(zip(hits, support, strict=True))]
        return passages, question, version

    @app.post("/ask", dependencies=guard, summary="Answer a question from the documents")
    def ask(body: AskRequest):
        passages, question, version = retrieve(body)
        support = max((p.support for p in passages), default=0.0)
        usable = [p for p in passages if p.support >= config.min_support]
        base = {"question": body.question, "model_version": version,
                "support": round(support, 4), "min_support": config.min_support}
        if not usable:
            payload = {**base, "answer": REFUSAL, "mode": "refused", "citations": []}
            return _stream_once(payload) if body.stream else _json(payload)
        for number, passage in enumerate(usable, start=1):
            passage.number = number
        if config.llm is None:
            answer, numbers = extractive_answer(
                question, usable, lambda texts: models.encode(texts, version))
            payload = {**base, "answer": answer, "mode": "extractive",
                       "citations": [p.to_dict() for p in usable if p.number in numbers],
                       "passages": [p.to_dict() for p in usable]}
            return _stream_once(payload) if body.stream else _json(payload)
        messages = build_messages(body.question, usable)
        if body.stream:
            return StreamingResponse(_llm_events(config.llm, messages, base, usable),
                                     media_type="text/event-stream")
        try:
            answer = "".join(stream_chat(config.llm, messages))
        except LlmError as exc:
            return _error(502, str(exc))
        numbers = cited_numbers(answer)
        return _json({**base, "answer": answer, "mode": "llm",
                      "citations": [p.to_dict() for p in usable if p.number in numbers],
                      "passages": [p.to_dict() for p in usable]})

    @app.get("/recommend/item/{doc_id:path}", dependencies=guard,
             summary="Documents related to one document")
    def recommend_item(doc_id: str = Path(min_length=1), k: int = Query(5, ge=1, le=50)):
        try:
            items = recommend.similar_items(client, alias, doc_id, k)
        except recommend.UnknownDocument as exc:
            return _error(404, str(exc))
        return _json({"doc_id": doc_id, "items": items})

    @app.get("/recommend/user/{user_id}", dependencies=guard,
             summary="Recommendations for a user from their recent clicks")
    def recommend_user(user_id: str = Path(min_length=1, max_length=200),
                       k: int = Query(10, ge=1, le=50)):
        version = searcher.model_version(alias)
        return _json(recommend.for_user(client, alias, user_id, models, version, k))

    @app.post("/events", dependencies=guard, summary="Log impressions and clicks")
    def post_events(body: EventsRequest):
        rows = event_log.normalise_events([e.model_dump() for e in body.events])
        return _json({"stored": event_log.log_events(client, alias, rows)})

    @app.get("/health", summary="Index, model version and configuration")
    def health():
        try:
            version = searcher.model_version(alias)
        except ApiError:
            version = None
        return _json({"status": "ok", "index": alias, "model_version": version,
                      "llm": config.llm.model if config.llm else None,
                      "auth": bool(config.token)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        types = {".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind("."):] if "." in name else ""
        if "/" in name or suffix not in types:
            return _error(404, "no such file")
        try:
            return Response(_static(name), media_type=types[suffix])
        except FileNotFoundError:
            return _error(404, "no such file")

    return app


def _static(name: str) -> str:
    return (resources.files("ragrec.api") / "static" / name).read_text(encoding="utf-8")


def _sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _stream_once(payload: dict) -> StreamingResponse:
    def events():
        yield _sse("passages", payload.get("passages", []))
        yield _sse("delta", {"text": payload["answer"]})
        yield _sse("done", {k: v for k, v in payload.items() if k != "passages"})
    return StreamingResponse(events(), media_type="text/event-stream")


def _llm_events(settings: LlmSettings, messages, base: dict, passages: list[Passage]):
    yield _sse("passages", [p.to_dict() for p in passages])
    parts = []
    try:
        for delta in stream_chat(settings, messages):
            parts.append(delta)
            yield _sse("delta", {"text": delta})
    except LlmError as exc:
        yield _sse("error", {"message": str(exc)})
        return
    answer = "".join(parts)
    numbers = cited_numbers(answer)
    yield _sse("done", {**base, "answer": answer, "mode": "llm",
                        "citations": [p.to_dict() for p in passages if p.number in numbers]})
