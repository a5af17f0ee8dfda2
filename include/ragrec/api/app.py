"""The surfaces' HTTP API (``ragrec serve-api``): search, RAG Q&A, recommendations, events,
and a small web page - one service over the same index and models.

Routes
  GET|POST /search              BM25 / dense / hybrid, filters, rerank, highlights
  POST /ask                     grounded answer with numbered citations (JSON or SSE stream)
  POST /chat                    the same, in a conversation: follow-ups, stored turns
  GET  /chat/{id}               a conversation's turns (its caller only)
  GET  /recommend/item/{doc_id} more like this (by vector, one per document, MMR)
  GET  /recommend/user/{user}   profile from recent clicks (time decay), seen excluded, reranked
  POST /events                  impressions, clicks, answer feedback -> ``<alias>-events``
  GET  /health                  index, model version behind the alias, what is configured
  GET  /                        the web page; /openapi.json, /docs

Auth: ``Authorization: Bearer <token>`` on every route but /health, /, the page's static
files and the docs, when ``RAGREC_API_TOKEN`` is set. The token is checked, and the body
(at most ``max_body_bytes``, 256 KB) counted while it is read, before anything parses it
(``serving/request_guard.py``): a caller without the token gets a 401 with its body unread,
an oversized body - chunked or not - a 413 once the limit is passed.

Errors: every route, the framework's 404/405 included, answers ``{"error": {"code",
"message"}}`` - 4xx for bad input (422 for schema violations: request fields are strict, so
``"stream": 0`` is refused, and they stop where Elasticsearch would refuse the query), never
a 500. /openapi.json lists each route's status codes and media types.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Annotated, Literal

from elasticsearch import ApiError, Elasticsearch
from elasticsearch import ConnectionError as EsConnectionError
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import Field, StrictBool, StrictInt, ValidationError
from starlette.datastructures import Headers

from ragrec.answers import llm
from ragrec.answers.answerer import Answer, Answerer, Context
from ragrec.answers.conversations import (
    MAX_TURNS,
    ConversationFull,
    ConversationStore,
    UnknownConversation,
    new_conversation_id,
    owner_key,
)
from ragrec.api import responses as answers
from ragrec.api.es_limits import EsDateTime, RequestModel
from ragrec.api.search import QueryText, SearchFilters, SearchQuery, search
from ragrec.config import ApiSettings
from ragrec.feedback.exploration import Explorer
from ragrec.models.resolver import ModelResolver, ModelUnavailable, TextRefused
from ragrec.recs import events as event_log
from ragrec.recs import recommend
from ragrec.retrieval import EncoderMismatch, NoReranker, Searcher
from ragrec.retrieval.queries import filter_clauses
from ragrec.web.http_errors import (
    BadRequest,
    FaultBarrier,
    error_response,
    error_responses,
    install_error_handlers,
    json_response,
)
from ragrec.web.openapi_docs import complete_openapi
from ragrec.web.request_guard import DOCS_PATHS, RequestGuard, token_refusal

log = logging.getLogger("ragrec.api")


class AskRequest(RequestModel):
    question: QueryText
    k: StrictInt = Field(5, ge=1, le=20, description="passages given to the answer")
    mode: Literal["bm25", "dense", "hybrid"] | None = Field(
        None, description="default: the served spec's")
    rerank: StrictBool | None = None
    filters: SearchFilters = Field(default_factory=SearchFilters)
    stream: StrictBool = Field(False, description="server-sent events instead of one JSON")


# A conversation id as /chat hands it out (URL-safe), and what a path may carry.
ConversationId = Annotated[str, Field(min_length=8, max_length=64,
                                      pattern=r"^[A-Za-z0-9_-]+$")]


class ChatRequest(AskRequest):
    conversation_id: ConversationId | None = Field(
        None, description="continue this conversation (default: start one)")


# A response's trace id as the API hands it out, and what an event may carry back.
TraceId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class EventIn(RequestModel):
    user_id: str = Field(min_length=1, max_length=200)
    doc_id: str = Field(min_length=1, max_length=1000)
    type: Literal["impression", "click", "up", "down", "helped"] = Field(
        description="impression/click: search and recommendations; up/down: an answer's "
                    "thumbs (one event per cited document); helped: this cited source helped")
    query: str | None = Field(None, max_length=2000)
    surface: str | None = Field(None, max_length=50)
    conversation_id: ConversationId | None = None
    turn: StrictInt | None = Field(None, ge=1, le=MAX_TURNS)
    ts: EsDateTime | None = Field(None, description="ISO 8601 (UTC offset within +-18:00; "
                                                    "none: UTC); default now")
    trace_id: TraceId | None = Field(None, description="the trace_id of the response that "
                                                       "showed the document")
    scene_id: str | None = Field(None, min_length=1, max_length=50, pattern=r"^[^:]+$",
                                 description="the page or slot it was shown in (AIRec's "
                                             "scene; no colon)")
    position: StrictInt | None = Field(None, ge=0, le=10_000,
                                       description="its place in the response, from 0")


class EventsRequest(RequestModel):
    events: list[EventIn] = Field(min_length=1, max_length=event_log.MAX_EVENTS)


# A document id in a URL: short enough that the request line stays within what the HTTP
# server parses (uvicorn refuses one over ~80 KB with its own plain-text 400), and a real id.
UrlId = Annotated[str, Field(min_length=1, max_length=1000)]

# Open without a token: the load balancer's probe, the web page and its files, the docs.
PUBLIC_PATHS = DOCS_PATHS | {"/health", "/"}
PUBLIC_PREFIXES = ("/static/",)
# Statuses every guarded route can answer besides its own.
GUARDED = (401, 500)
SEARCH_ERRORS = (404, 409, 502, 503)  # no index; model version; ES refused; ES/model down
BODY_ERRORS = (400, 413, 415, 422)  # unreadable, too large, not JSON, schema


def _search_from_query_string(**fields) -> SearchQuery:
    """GET /search's parameters as the body model, with the parameters' names in errors."""
    names = {"query": "q", "filters": None}
    try:
        return SearchQuery(**fields)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False):
            loc = [p for p in error["loc"] if names.get(p, p) is not None]
            errors.append({**error, "loc": ("query", *(names.get(p, p) for p in loc))})
        raise RequestValidationError(errors) from None


def create_app(client: Elasticsearch, models: ModelResolver,
               config: ApiSettings | None = None) -> FastAPI:
    config = config or ApiSettings()
    searcher = Searcher(client, models)
    alias = config.index
    explorer = Explorer(config.explore)
    answerer = Answerer(searcher, config.min_support, config.llm)
    conversations = ConversationStore(client, alias, config.chat_retention_days)
    if not config.token:
        log.warning("RAGREC_API_TOKEN is not set: the API accepts any caller")
    app = FastAPI(title="ragrec search API", version="1",
                  description="Search, grounded Q&A and recommendations over the ragrec "
                              "index, with the custom models. Errors: "
                              '{"error": {"code", "message"}}. A body over '
                              f"{config.max_body_bytes} bytes is a 413 on any route.")

    def protected(path: str) -> bool:
        return path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES)

    def refusal(path: str, headers: Headers) -> BadRequest | None:
        return token_refusal(headers, config.token) if protected(path) else None

    def traced(payload: dict) -> dict:
        """A response with its own trace id, for the events that follow it."""
        return {"trace_id": event_log.new_trace_id(), **payload}

    def searched(query: SearchQuery) -> dict:
        """A ``/search`` answer; one in the exploration slice is logged as such."""
        answer = traced(search(searcher, alias, query, explorer))
        if "explore" in answer:
            event_log.log_exploration(client, alias, answer)
        return answer

    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body_bytes=config.max_body_bytes, refusal=refusal)
    app.add_middleware(FaultBarrier, service="search API")  # outermost: added last
    if config.token:
        complete_openapi(app, {"bearer": "RAGREC_API_TOKEN"},
                         lambda path: "bearer" if protected(path) else None)

    @app.exception_handler(EncoderMismatch)
    async def mismatch(_request: Request, exc: EncoderMismatch):
        return error_response(409, str(exc))

    @app.exception_handler(NoReranker)
    async def no_reranker(_request: Request, exc: NoReranker):
        return error_response(409, str(exc))

    @app.exception_handler(TextRefused)
    async def text_refused(_request: Request, exc: TextRefused):
        return error_response(422, str(exc))

    @app.exception_handler(ModelUnavailable)
    async def model_down(_request: Request, exc: ModelUnavailable):
        return error_response(503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(EsConnectionError)
    async def es_down(_request: Request, exc: EsConnectionError):
        return error_response(503, f"Elasticsearch is unreachable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(ApiError)
    async def es_refused(_request: Request, exc: ApiError):
        if exc.meta.status == 404:
            return error_response(404, f"index {alias!r} does not exist yet: run kb_ingest "
                                       "first")
        return error_response(502, f"Elasticsearch refused the query: {exc.message}")

    @app.post("/search", summary="Search the index",
              responses={200: {"model": answers.SearchResult},
                         **error_responses(*BODY_ERRORS, *GUARDED, *SEARCH_ERRORS)})
    def search_post(body: SearchQuery):
        return json_response(searched(body))

    @app.get("/search", summary="Search the index (query string)",
             responses={200: {"model": answers.SearchResult},
                        **error_responses(422, *GUARDED, *SEARCH_ERRORS)})
    def search_get(q: str = Query(min_length=1, max_length=2000,
                                  json_schema_extra={"pattern": r"\S"}),
                   mode: Literal["bm25", "dense", "hybrid"] | None = None,
                   fusion: Literal["rrf", "convex"] | None = None,
                   k: int = Query(10, ge=1, le=50), rerank: bool | None = None,
                   doc_id: Annotated[list[UrlId] | None, Query(
                       max_length=100, description="only these documents (more: POST)")] = None):
        query = _search_from_query_string(query=q, mode=mode, fusion=fusion, k=k,
                                          rerank=rerank, filters=SearchFilters(doc_id=doc_id))
        return json_response(searched(query))

    def context(body: AskRequest, history: list[dict]) -> Context:
        def spec_of(served):
            return SearchQuery(query=body.question, mode=body.mode, rerank=body.rerank,
                               k=body.k).spec(served)
        return answerer.retrieve(alias, body.question, spec_of, body.k,
                                 filter_clauses(body.filters), history)

    def respond(body: AskRequest, ctx: Context, extra: dict, keep=None):
        """The answer as JSON or a stream; ``keep(payload)`` stores a chat turn."""
        def finished(answer: Answer) -> dict:
            payload = {**extra, **answer.to_dict(config.min_support)}
            if keep is not None:
                keep(payload)
            return payload

        if not ctx.passages or config.llm is None:
            answer = answerer.extractive(ctx) if ctx.passages else answerer.refusal(ctx)
            payload = finished(answer)
            return _stream_once(payload) if body.stream else json_response(payload)
        if body.stream:
            return StreamingResponse(_llm_events(answerer, ctx, extra, finished),
                                     media_type="text/event-stream")
        try:
            text = "".join(answerer.deltas(ctx))
        except llm.LlmError as exc:
            return error_response(502, str(exc))
        return json_response(finished(answerer.grounded(ctx, text)))

    @app.post("/ask", summary="Answer a question from the documents",
              responses={200: {"model": answers.Answer, "description": "The answer (JSON), or "
                               "with `stream` a stream of server-sent events",
                               "content": {"text/event-stream": {
                                   "itemSchema": answers.ANSWER_EVENT}}},
                         **error_responses(*BODY_ERRORS, *GUARDED, *SEARCH_ERRORS)})
    def ask(body: AskRequest):
        return respond(body, context(body, []), traced({}))

    def caller(request: Request) -> str:
        return owner_key(config.token, request.headers.get("x-ragrec-user"))

    @app.post("/chat", summary="Start or continue a conversation",
              description="A follow-up is searched as a standalone query built from the "
                          "earlier turns; every turn is stored in `<alias>-conversations`. "
                          "The caller is the bearer token plus the `X-Ragrec-User` header, "
                          "which is trusted from any holder of the token (who can name any "
                          "user): let a sign-on proxy set it and hold the token.",
              responses={200: {"model": answers.ChatTurn, "description": "The turn (JSON), "
                               "or with `stream` a stream of server-sent events",
                               "content": {"text/event-stream": {
                                   "itemSchema": answers.ANSWER_EVENT}}},
                         **error_responses(*BODY_ERRORS, *GUARDED, *SEARCH_ERRORS)})
    def chat(body: ChatRequest, request: Request):
        owner = caller(request)
        history: list[dict] = []
        conversation_id = body.conversation_id
        if conversation_id:
            try:
                history = conversations.turns(conversation_id, owner)
            except UnknownConversation as exc:
                return error_response(404, str(exc))
        else:
            conversation_id = new_conversation_id()
        try:  # after the newest live turn, not after their count: older ones may expire
            turn = conversations.reserve(conversation_id, owner,
                                         max((t["turn"] for t in history), default=0))
        except ConversationFull as exc:
            return error_response(409, str(exc))
        ctx = context(body, history)

        def keep(payload: dict) -> None:
            conversations.append(conversation_id, owner, turn, {
                k: payload.get(k) for k in ("question", "standalone_query", "answer", "mode",
                                            "model_version", "sentences", "citations",
                                            "passages", "timings_ms")})
        return respond(body, ctx, traced({"conversation_id": conversation_id, "turn": turn}),
                       keep)

    @app.get("/chat/{conversation_id}", summary="A conversation's turns",
             responses={200: {"model": answers.Conversation},
                        **error_responses(404, 422, *GUARDED, 502, 503)})
    def chat_history(conversation_id: ConversationId, request: Request):
        try:
            turns = conversations.turns(conversation_id, caller(request))
        except UnknownConversation as exc:
            return error_response(404, str(exc))
        return json_response({"conversation_id": conversation_id, "turns": turns})

    @app.get("/recommend/item/{doc_id:path}", summary="Documents related to one document",
             responses={200: {"model": answers.SimilarItems},
                        **error_responses(404, 422, *GUARDED, 502, 503)})
    def recommend_item(doc_id: UrlId,
                       k: int = Query(5, ge=1, le=50)):
        try:
            items = recommend.similar_items(client, alias, doc_id, k)
        except recommend.UnknownDocument as exc:
            return error_response(404, str(exc))
        return json_response(traced({"doc_id": doc_id, "items": items}))

    @app.get("/recommend/user/{user_id}",
             summary="Recommendations for a user from their recent clicks",
             responses={200: {"model": answers.UserRecommendations},
                        **error_responses(422, *GUARDED, *SEARCH_ERRORS)})
    def recommend_user(user_id: str = Path(min_length=1, max_length=200),
                       k: int = Query(10, ge=1, le=50)):
        version = searcher.model_version(alias)
        return json_response(traced(recommend.for_user(client, alias, user_id, models,
                                                       version, k)))

    @app.post("/events", summary="Log impressions and clicks",
              responses={200: {"model": answers.Stored},
                         **error_responses(*BODY_ERRORS, *GUARDED, 502, 503)})
    def post_events(body: EventsRequest):
        rows = event_log.normalise_events([e.model_dump() for e in body.events])
        return json_response({"stored": event_log.log_events(client, alias, rows)})

    @app.get("/health", summary="Index, model version and configuration",
             responses={200: {"model": answers.Health}, **error_responses(500, 503)})
    def health():
        try:
            version = searcher.model_version(alias)
        except ApiError:
            version = None
        return json_response({"status": "ok", "index": alias, "model_version": version,
                              "llm": config.llm.model if config.llm else None,
                              "auth": bool(config.token)})

    # response_class=Response: the document's 200s name their own media types, and the
    # errors stay application/json (FastAPI would label them with the route's class).
    @app.get("/", response_class=Response, summary="The web page",
             responses={200: {"description": "The page",
                              "content": {"text/html": {"schema": {"type": "string"}}}},
                        **error_responses(500)})
    def page():
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", response_class=Response,
             summary="The web page's script and style sheet",
             responses={200: {"description": "The file",
                              "content": {"text/javascript": {"schema": {"type": "string"}},
                                          "text/css": {"schema": {"type": "string"}}}},
                        **error_responses(404, 422, 500)})
    def static(name: str):
        types = {".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind("."):] if "." in name else ""
        if name not in _STATIC_FILES or suffix not in types:  # never a path from the caller
            return error_response(404, f"no file {name!r} here")
        return Response(_static(name), media_type=types[suffix])

    return app


_STATIC_FILES = frozenset(p.name for p in (resources.files("ragrec.api") / "static").iterdir())


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


def _llm_events(answerer: Answerer, ctx: Context, extra: dict, finished):
    yield _sse("passages", [p.to_dict() for p in ctx.passages])
    parts = []
    try:
        for delta in answerer.deltas(ctx):
            parts.append(delta)
            yield _sse("delta", {"text": delta})
    except llm.LlmError as exc:
        yield _sse("error", {"message": str(exc)})
        return
    payload = finished(answerer.grounded(ctx, "".join(parts)))
    yield _sse("done", {k: v for k, v in payload.items() if k != "passages"})
