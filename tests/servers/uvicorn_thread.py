"""An ASGI app served by a real uvicorn on a free port, on a thread, for a ``with`` block: the
network path a client takes (chunked bodies, connection handling), which the in-process
TestClient does not have - it reads a streamed body whole before the app sees it."""

from __future__ import annotations

import threading
import time

import uvicorn


class UvicornThread:
    def __init__(self, app):
        from ragrec.dev.es_node.node import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
