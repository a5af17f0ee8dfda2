"""Serving a local test server on a daemon thread for the life of a ``with`` block."""

from __future__ import annotations

import socketserver
import threading


class InBackground:
    """Serves ``self.server`` on a daemon thread inside a ``with`` block."""

    server: socketserver.BaseServer

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
