"""The model server's HTTP API (FastAPI, run by uvicorn).

Routes
  POST /api/predict/{service}  EAS style: {"texts": [...]} -> {"embeddings", "model_version",
                               "dims"}; also POST / (where the EAS gateway sends it), and
                               every route below, as /api/predict/{service}/<route>
  POST /v1/embeddings          OpenAI-compatible: {"input": str | [str], "model"?}
  POST /v1/rerank              {"query", "documents", "top_n"?, "return_documents"?}
  POST /rank                   {"ranker", "user": {"id", "history"}, "candidates": [{"id",
                               "features"}]} -> {"scores", "ranker"}: a learned
                               recommendation ranker (``models.ranker``) found by version
                               or registry reference (``ServerConfig.registry``); the route
                               AIRec's custom ranker and ``/recommend`` call
  GET  /health                 model name, version, dims, max input tokens, reranker, backend
  GET  /metrics                Prometheus text
  POST /admin/model            {"model": URI, "backend"?}: load, warm up, switch, unload old
  GET  /openapi.json, /docs

Auth: ``Authorization: <token>`` (EAS) or ``Authorization: Bearer <token>`` on the model
routes when a service token is configured; the admin route needs the admin token and is
off (403) without one. /health, /metrics and the docs are open (load-balancer probes,
scrapers). The token is checked, and the body (at most 8 MB) counted while it is read,
before any handler parses it (``request_guard``): no token, a 401 with the body unread;
over the limit, chunked or not, a 413 once the limit is passed.

Errors: every route, the framework's 404/405 included, answers ``{"error": {"code",
"message"}}``. The handlers validate bodies by hand (``requests``); the OpenAPI document
describes the same bodies, each route's status codes and media types.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI, Path, Request, Response
from starlette.datastructures import Headers
from starlette.routing import Match

from ragrec.config import RegistrySettings
from ragrec.serving import responses as answers
from ragrec.serving.batching import DynamicBatcher
from ragrec.serving.loaded_model import LoadedModel
from ragrec.serving.metrics import Metrics
from ragrec.serving.requests import (
    BODIES,
    EasRequest,
    EmbeddingsRequest,
    Limits,
    ModelSwapRequest,
    RankRequest,
    RerankRequest,
    check_token_limits,
    input_type,
    parse_body,
    rank_request,
    rerank_request,
    text_list,
)
from ragrec.web.http_errors import (
    BadRequest,
    FaultBarrier,
    error_responses,
    install_error_handlers,
    json_response,
)
from ragrec.web.openapi_docs import complete_openapi, json_body
from ragrec.web.request_guard import DOCS_PATHS, RequestGuard, token_refusal

log = logging.getLogger("ragrec.serving")

PUBLIC_PATHS = DOCS_PATHS | {"/health", "/metrics"}
ADMIN_PREFIX = "/admin/"
# Statuses every model route can answer besides its own: unreadable body, token, too large.
MODEL_ROUTE_ERRORS = (400, 401, 413, 500)


@dataclass
class ServerConfig:
    service: str = "ragrec-embed"
    token: str | None = None
    admin_token: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_batch: int = 64
    max_wait_ms: float = 4.0
    max_rerank_pairs: int = 256  # (query, passage) pairs merged into one rerank call
    registry: RegistrySettings | None = None  # where /rank finds ranker versions


class ServerState:
    def __init__(self, model: LoadedModel, config: ServerConfig):
        self.model = model
        self.config = config
        self.metrics = Metrics()
        self.metrics.model_info = {"name": model.info.name, "version": model.info.version}
        self.swap_lock = asyncio.Lock()
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragrec-model")
        self.batcher = DynamicBatcher(self._run_batch, config.max_batch, config.max_wait_ms,
                                      observe=self.metrics.batch, executor=self.model_thread)
        # Concurrent rerank requests merge into one cross-encoder call on the same thread.
        self.rerank_batcher = DynamicBatcher(self._run_rerank, config.max_rerank_pairs,
                                             config.max_wait_ms, executor=self.model_thread,
                                             observe=self.metrics.rerank_batch)

    def _run_batch(self, items: list[tuple[str, str]]):
        model = self.model  # one model per batch, even if a swap lands meanwhile
        return model.embed_items(items), model.info

    def _run_rerank(self, pairs: list[tuple[str, str]]):
        model = self.model
        return model.rerank_pairs(pairs), model.info


def _versioned(model: type) -> dict:
    """A 200 answer of a model route: ``model`` as JSON, with the X-Model-Version header."""
    return {200: {"model": model, "headers": {
        name: {**spec, "required": True} for name, spec in answers.MODEL_VERSION.items()}}}


def create_app(model: LoadedModel, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    state = ServerState(model, config)
    if not config.token:
        log.warning("no service token configured: the model routes accept any caller")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await state.batcher.start()
        await state.rerank_batcher.start()
        yield
        await state.rerank_batcher.stop()
        await state.batcher.stop()
        state.model_thread.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ragrec model server", version="1", lifespan=lifespan,
                  description="Embeddings (EAS-style and OpenAI-compatible), reranking, "
                              "health, metrics and zero-downtime model swaps. Errors: "
                              '{"error": {"code", "message"}}. A body over '
                              f"{config.limits.max_body_bytes} bytes is a 413 on any route.")
    app.state.ragrec = state

    def token_scheme(path: str) -> str | None:
        if path in PUBLIC_PATHS:
            return None
        return "admin" if path.startswith(ADMIN_PREFIX) else "service"

    def refusal(path: str, headers: Headers) -> BadRequest | None:
        scheme = token_scheme(path)
        if scheme == "admin" and not config.admin_token:
            return BadRequest(403, "model swaps are disabled: start the server with an admin "
                                   "token")
        if scheme is None:
            return None
        return token_refusal(headers, config.admin_token if scheme == "admin" else config.token)

    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body_bytes=config.limits.max_body_bytes,
                       refusal=refusal)
    app.add_middleware(FaultBarrier, service="model server")
    tokens = {"service": config.token, "admin": config.admin_token}
    schemes = {"service": "RAGREC_SERVE_TOKEN (EAS clients may send it bare)",
               "admin": "RAGREC_ADMIN_TOKEN"}
    complete_openapi(app, {name: text for name, text in schemes.items() if tokens[name]},
                     lambda path: token_scheme(path) if tokens.get(token_scheme(path)) else None,
                     BODIES)

    @app.middleware("http")  # outermost: counts every answer, the guard's refusals included
    async def observe(request: Request, call_next):
        started = time.monotonic()
        response = await call_next(request)
        state.metrics.request(_route_name(app, request.scope), response.status_code,
                              time.monotonic() - started)
        return response

    async def embed_texts(body: dict, texts: list[str], field_name: str):
        info = state.model.info
        role = input_type(body)
        counts = state.model.token_counts(texts)
        check_token_limits(counts, info.max_input_tokens, field_name)
        vectors, served = await state.batcher.submit([(role, text) for text in texts])
        return vectors, served, counts

    async def eas_embeddings(request: Request):
        body = parse_body(await request.body())
        texts = text_list(body, "texts", config.limits, allow_single=False)
        vectors, served, _ = await embed_texts(body, texts, "texts")
        return json_response({"embeddings": vectors, "model_version": served.version,
                              "dims": served.dims, "query_encoder": served.query_encoder,
                              "document_version": served.document_version},
                             headers={"X-Model-Version": served.version})

    @app.post("/api/predict/{service}", summary="EAS-style embeddings",
              openapi_extra=json_body(EasRequest),
              responses={**_versioned(answers.EasEmbeddings),
                         **error_responses(*MODEL_ROUTE_ERRORS, 404, 422)})
    async def eas_predict(request: Request, service: str = Path(
            description="this server's EAS service name (any other is a 404)",
            json_schema_extra={"enum": [config.service]})):
        if service != config.service:
            raise BadRequest(404, f"no service {service!r} here; this server is "
                                  f"{config.service!r}")
        return await eas_embeddings(request)

    @app.post("/", summary="EAS-style embeddings, as the EAS gateway forwards them",
              openapi_extra=json_body(EasRequest),
              responses={**_versioned(answers.EasEmbeddings),
                         **error_responses(*MODEL_ROUTE_ERRORS, 422)})
    async def eas_root(request: Request):
        return await eas_embeddings(request)

    @app.post("/v1/embeddings", summary="OpenAI-compatible embeddings",
              openapi_extra=json_body(EmbeddingsRequest),
              responses={**_versioned(answers.Embeddings),
                         **error_responses(*MODEL_ROUTE_ERRORS, 404)})
    async def openai_embeddings(request: Request):
        body = parse_body(await request.body())
        texts = text_list(body, "input", config.limits, allow_single=True)
        info = state.model.info
        asked = body.get("model")
        if asked is not None and asked not in (info.name, info.version):
            raise BadRequest(404, f"model {asked!r} is not served here (this server serves "
                                  f"{info.name} version {info.version})")
        if body.get("dimensions") not in (None, info.dims):
            raise BadRequest(400, f"'dimensions' {body['dimensions']!r} is not supported: the "
                                  f"model gives {info.dims}")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest(400, "'encoding_format' must be 'float' or 'base64'")
        vectors, served, counts = await embed_texts(body, texts, "input")
        rows = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
                 if encoding == "base64" else v}
                for i, v in enumerate(vectors)]
        tokens = int(sum(counts))
        return json_response({"object": "list", "data": rows, "model": served.version,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                              "query_encoder": served.query_encoder,
                              "document_version": served.document_version},
                             headers={"X-Model-Version": served.version})

    @app.post("/v1/rerank", summary="Cross-encoder reranking",
              openapi_extra=json_body(RerankRequest),
              responses={**_versioned(answers.Reranked),
                         **error_responses(*MODEL_ROUTE_ERRORS, 404)})
    async def rerank(request: Request):
        body = parse_body(await request.body())
        query, documents, top_n, return_documents = rerank_request(body, config.limits)
        if not state.model.info.reranker:
            raise BadRequest(404, f"model version {state.model.info.version} has no reranker")
        scores, served = await state.rerank_batcher.submit([(query, d) for d in documents])
        if not served.reranker:  # swapped to a version without one while queued
            raise BadRequest(404, f"model version {served.version} has no reranker")
        order = np.argsort(-scores, kind="stable")[: top_n or len(documents)]
        results = []
        for index in order:
            row = {"index": int(index), "relevance_score": float(scores[index])}
            if return_documents:
                row["document"] = {"text": documents[index]}
            results.append(row)
        return json_response({"results": results, "model": served.version},
                             headers={"X-Model-Version": served.version})

    @app.post("/rank", summary="Recommendation candidates scored by a learned ranker",
              openapi_extra=json_body(RankRequest),
              responses={200: {"model": answers.Ranked},
                         **error_responses(*MODEL_ROUTE_ERRORS, 404)})
    async def rank(request: Request):
        from ragrec.models import ranker as rankers

        body = parse_body(await request.body())
        reference, history, _ids, rows = rank_request(body, config.limits,
                                                      request.query_params.get("ranker"))
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(None, rankers.load_reference, reference,
                                               config.registry)
        except LookupError as exc:
            raise BadRequest(404, str(exc)) from None
        scores = model.score(rows, history)
        return json_response({"scores": [float(s) for s in scores], "ranker": model.version},
                             headers={"X-Model-Version": model.version})

    @app.get("/health", summary="What is being served",
             responses={200: {"model": answers.Health}, **error_responses(500)})
    async def health():
        return json_response({"status": "ok", **state.model.info.to_dict(),
                              "service": config.service})

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"description": "Prometheus text exposition format 0.0.4",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **error_responses(500)})
    async def metrics():
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/model", summary="Swap the served model version without downtime",
              openapi_extra=json_body(ModelSwapRequest),
              responses={200: {"model": answers.Swapped},
                         **error_responses(*MODEL_ROUTE_ERRORS, 403, 409)})
    async def swap(request: Request):
        body = parse_body(await request.body())
        uri = body.get("model")
        if not isinstance(uri, str) or not uri:
            raise BadRequest(400, "missing field 'model': the model URI to serve")
        backend = body.get("backend", state.model.info.backend)
        if state.swap_lock.locked():
            raise BadRequest(409, "a model swap is already in progress")
        async with state.swap_lock:
            previous = state.model.info
            loop = asyncio.get_running_loop()
            try:
                # Loaded and warmed off the serving thread: requests keep flowing.
                new = await loop.run_in_executor(None, _load_warm, uri, backend)
            except (ValueError, OSError) as exc:
                raise BadRequest(400, f"cannot load model {uri!r}: {exc}") from None
            state.model = new
            state.metrics.swaps += 1
            state.metrics.model_info = {"name": new.info.name, "version": new.info.version}
            log.info("now serving %s (was %s)", new.info.version, previous.version)
            return json_response({"previous": previous.to_dict(), "current": new.info.to_dict()})

    # Outermost: a path below the service's EAS address is the route it names, as the EAS
    # gateway forwards it (``/api/predict/<service>/v1/rerank`` -> ``/v1/rerank``).
    app.add_middleware(ServiceAddress, prefix=f"/api/predict/{config.service}/")
    return app


class ServiceAddress:
    """Pure ASGI: strips this service's EAS address from the paths below it."""

    def __init__(self, app, prefix: str):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(self.prefix):
            raw = scope.get("raw_path") or path.encode()
            raw_prefix = self.prefix.encode()
            raw = b"/" + raw[len(raw_prefix):] if raw.startswith(raw_prefix) else raw
            scope = {**scope, "path": "/" + path[len(self.prefix):], "raw_path": raw}
        await self.app(scope, receive, send)


def _route_name(app: FastAPI, scope) -> str:
    """The route template a request was for - also when the guard answered before routing."""
    route = scope.get("route")
    if route is None:
        route = next((r for r in app.router.routes if r.matches(scope)[0] is Match.FULL), None)
    return getattr(route, "path", "unmatched")


def _load_warm(uri: str, backend: str) -> LoadedModel:
    model = LoadedModel.from_uri(uri, backend)
    model.warm_up()
    return model
