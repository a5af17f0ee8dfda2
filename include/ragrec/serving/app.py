"""The model server's HTTP API (FastAPI, run by uvicorn).

Routes
  POST /api/predict/{service}  EAS style: {"texts": [...]} -> {"embeddings", "model_version",
                               "dims"}
  POST /v1/embeddings          OpenAI-compatible: {"input": str | [str], "model"?}
  POST /v1/rerank              {"query", "documents", "top_n"?, "return_documents"?}
  GET  /health                 model name, version, dims, max input tokens, reranker, backend
  GET  /metrics                Prometheus text
  POST /admin/model            {"model": URI, "backend"?}: load, warm up, switch, unload old
  GET  /openapi.json, /docs

Auth: ``Authorization: <token>`` (EAS) or ``Authorization: Bearer <token>`` on the model
routes when a service token is configured; the admin route needs the admin token and is
off without one. /health and /metrics are open (load-balancer probes, scrapers).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response

from ragrec.serving.batching import DynamicBatcher
from ragrec.serving.loaded_model import LoadedModel
from ragrec.serving.metrics import Metrics
from ragrec.serving.requests import (
    BadRequest,
    Limits,
    check_token_limits,
    parse_body,
    rerank_request,
    text_list,
)

log = logging.getLogger("ragrec.serving")


@dataclass
class ServerConfig:
    service: str = "ragrec-embed"
    token: str | None = None
    admin_token: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_batch: int = 64
    max_wait_ms: float = 4.0


class ServerState:
    def __init__(self, model: LoadedModel, config: ServerConfig):
        self.model = model
        self.config = config
        self.metrics = Metrics()
        self.metrics.model_info = {"name": model.info.name, "version": model.info.version}
        self.swap_lock = asyncio.Lock()
        self.batcher = DynamicBatcher(self._run_batch, config.max_batch, config.max_wait_ms,
                                      observe=self.metrics.batch)

    def _run_batch(self, texts: list[str]):
        model = self.model  # one model per batch, even if a swap lands meanwhile
        return model.embed(texts), model.info


def _json(payload: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return _json({"error": {"code": status, "message": message}}, status, headers)


def _authorised(request: Request, token: str | None) -> bool:
    if not token:
        return True
    given = request.headers.get("authorization", "")
    given = given[7:] if given.lower().startswith("bearer ") else given
    return hmac.compare_digest(given.encode(), token.encode())


def create_app(model: LoadedModel, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    state = ServerState(model, config)
    if not config.token:
        log.warning("no service token configured: the model routes accept any caller")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await state.batcher.start()
        yield
        await state.batcher.stop()

    app = FastAPI(title="ragrec model server", version="1", lifespan=lifespan,
                  description="Embeddings (EAS-style and OpenAI-compatible), reranking, "
                              "health, metrics and zero-downtime model swaps.")
    app.state.ragrec = state

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.monotonic()
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - a server fault is a 500 with a message, logged
            log.exception("request failed")
            response = _error(500, "internal error in the model server (see its log)")
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        state.metrics.request(name, response.status_code, time.monotonic() - started)
        return response

    async def embed_texts(texts: list[str], field_name: str):
        info = state.model.info
        counts = state.model.token_counts(texts)
        check_token_limits(counts, info.max_input_tokens, field_name)
        vectors, served = await state.batcher.submit(texts)
        return vectors, served, counts

    async def guarded(request: Request, handler, token: str | None):
        if not _authorised(request, token):
            return _error(401, "missing or wrong token in the Authorization header",
                          {"WWW-Authenticate": "Bearer"})
        try:
            body = parse_body(await request.body(), config.limits)
            return await handler(body)
        except BadRequest as exc:
            return _error(exc.status, exc.message)

    @app.post("/api/predict/{service}", summary="EAS-style embeddings")
    async def eas_predict(service: str, request: Request):
        if service != config.service:
            return _error(404, f"no service {service!r} here; this server is "
                               f"{config.service!r}")

        async def handle(body):
            texts = text_list(body, "texts", config.limits, allow_single=False)
            vectors, served, _ = await embed_texts(texts, "texts")
            return _json({"embeddings": vectors, "model_version": served.version,
                          "dims": served.dims},
                         headers={"X-Model-Version": served.version})

        return await guarded(request, handle, config.token)

    @app.post("/v1/embeddings", summary="OpenAI-compatible embeddings")
    async def openai_embeddings(request: Request):
        async def handle(body):
            texts = text_list(body, "input", config.limits, allow_single=True)
            info = state.model.info
            asked = body.get("model")
            if asked is not None and asked not in (info.name, info.version):
                raise BadRequest(404, f"model {asked!r} is not served here (this server "
                                      f"serves {info.name} version {info.version})")
            if body.get("dimensions") not in (None, info.dims):
                raise BadRequest(400, f"'dimensions' {body['dimensions']!r} is not supported: "
                                      f"the model gives {info.dims}")
            encoding = body.get("encoding_format", "float")
            if encoding not in ("float", "base64"):
                raise BadRequest(400, "'encoding_format' must be 'float' or 'base64'")
            vectors, served, counts = await embed_texts(texts, "input")
            rows = [{"object": "embedding", "index": i,
                     "embedding": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
                     if encoding == "base64" else v}
                    for i, v in enumerate(vectors)]
            tokens = int(sum(counts))
            return _json({"object": "list", "data": rows, "model": served.version,
                          "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                         headers={"X-Model-Version": served.version})

        return await guarded(request, handle, config.token)

    @app.post("/v1/rerank", summary="Cross-encoder reranking")
    async def rerank(request: Request):
        async def handle(body):
            query, documents, top_n, return_documents = rerank_request(body, config.limits)
            model = state.model
            if not model.info.reranker:
                raise BadRequest(404, f"model version {model.info.version} has no reranker")
            scores = await state.batcher.run_exclusive(lambda: model.rerank(query, documents))
            order = np.argsort(-scores, kind="stable")[: top_n or len(documents)]
            results = []
            for index in order:
                row = {"index": int(index), "relevance_score": float(scores[index])}
                if return_documents:
                    row["document"] = {"text": documents[index]}
                results.append(row)
            return _json({"results": results, "model": model.info.version},
                         headers={"X-Model-Version": model.info.version})

        return await guarded(request, handle, config.token)

    @app.get("/health", summary="What is being served")
    async def health():
        return _json({"status": "ok", **state.model.info.to_dict(), "service": config.service})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/model", summary="Swap the served model version without downtime")
    async def swap(request: Request):
        if not config.admin_token:
            return _error(403, "model swaps are disabled: start the server with an admin token")

        async def handle(body):
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
                return _json({"previous": previous.to_dict(), "current": new.info.to_dict()})

        return await guarded(request, handle, config.admin_token)

    return app


def _load_warm(uri: str, backend: str) -> LoadedModel:
    model = LoadedModel.from_uri(uri, backend)
    model.warm_up()
    return model
