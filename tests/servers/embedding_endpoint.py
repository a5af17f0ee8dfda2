"""An embedding endpoint that speaks the EAS and OpenAI wire protocols, for client tests.

It checks what the real service checks (token, body shape, batch limit) and can be told to
misbehave: answer 429/503 a number of times, return the wrong dimension, NaN, or
non-normalised vectors for texts carrying a marker. Vectors are derived from the text
deterministically, so the same text always gets the same vector.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from servers.json_reply import send_json


def text_vector(text: str, dims: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dims)
    return (vector / np.linalg.norm(vector)).tolist()


@dataclass
class Behaviour:
    token: str = "secret-token"
    dims: int = 384
    model_version: str = "test-model-v1"
    max_batch: int = 64
    transient: list[tuple[int, dict]] = field(default_factory=list)  # (status, headers), in order
    wrong_dims_marker: str | None = None
    nan_marker: str | None = None
    unnormalised_marker: str | None = None
    delay_seconds: float = 0.0


class EmbeddingEndpoint:
    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or Behaviour()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status, payload, headers=None):
                send_json(self, status, payload, headers)

            def do_POST(self):  # noqa: N802 - http.server naming
                endpoint._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def eas_url(self, service: str = "ragrec-embed") -> str:
        return f"{self.base_url}/api/predict/{service}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # -- protocol ----------------------------------------------------------------------------
    def _handle(self, handler) -> None:
        b = self.behaviour
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        path = handler.path
        auth = handler.headers.get("Authorization")
        record = {"path": path, "auth": auth, "at": time.monotonic(), "texts": []}
        with self.lock:
            self.requests.append(record)
            transient = b.transient.pop(0) if b.transient else None
        if path.startswith("/api/predict/"):
            if auth != b.token:
                return handler._reply(401, {"error": "invalid or missing token"})
            protocol = "eas"
        elif path == "/v1/embeddings":
            if auth != f"Bearer {b.token}":
                return handler._reply(401, {"error": {"message": "invalid api key"}})
            protocol = "openai"
        else:
            return handler._reply(404, {"error": "no such route"})
        try:
            body = json.loads(raw)
            texts = body["texts"] if protocol == "eas" else body["input"]
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not texts or \
                    not all(isinstance(t, str) for t in texts):
                raise ValueError("texts must be a non-empty list of strings")
        except (ValueError, KeyError, TypeError) as exc:
            return handler._reply(400, {"error": f"malformed request: {exc}"})
        record["texts"] = texts
        if len(texts) > b.max_batch:
            return handler._reply(413, {"error": f"batch of {len(texts)} > {b.max_batch}"})
        if transient:
            status, headers = transient
            return handler._reply(status, {"error": "try again"}, headers)
        if b.delay_seconds:
            # Counted while the request is being worked on, not while its answer is written:
            # a client may send its next request before this thread gets to count down.
            with self.lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            time.sleep(b.delay_seconds)
            with self.lock:
                self.in_flight -= 1
        vectors = []
        for text in texts:
            dims = b.dims + 16 if b.wrong_dims_marker and b.wrong_dims_marker in text else b.dims
            vector = text_vector(text, dims)
            if b.nan_marker and b.nan_marker in text:
                vector[0] = float("nan")
            if b.unnormalised_marker and b.unnormalised_marker in text:
                vector = [3.0 * x for x in vector]
            vectors.append(vector)
        if protocol == "eas":
            return handler._reply(200, {"embeddings": vectors, "model_version": b.model_version,
                                        "dims": b.dims})
        return handler._reply(200, {
            "object": "list", "model": b.model_version,
            "data": [{"object": "embedding", "index": i, "embedding": v}
                     for i, v in enumerate(vectors)],
        })
