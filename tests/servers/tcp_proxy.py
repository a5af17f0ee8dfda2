"""A loopback TCP proxy that can simulate an outage of the service behind it: every
connection is cut and new ones are refused until the outage ends. ``outage_on`` starts one
automatically when a request containing that marker (e.g. ``b"/_bulk"``) passes through."""

from __future__ import annotations

import socket
import threading
import time


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, outage_on: bytes | None = None,
                 outage_seconds: float | None = None, after_matches: int = 1):
        self.upstream = (upstream_host, upstream_port)
        self.outage_on, self.outage_seconds = outage_on, outage_seconds
        self.after_matches = after_matches
        self.matches = 0
        self.outages = 0
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def start_outage(self, seconds: float | None) -> None:
        with self._lock:
            self.outages += 1
            self._down_until = time.monotonic() + (seconds if seconds is not None else 1e9)
            for conn in list(self._conns):
                _close(conn)
            self._conns.clear()

    def end_outage(self) -> None:
        self._down_until = 0.0

    def close(self) -> None:
        self._stop = True
        _close(self._server)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.down:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, inspect: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if inspect and self.outage_on and self.outage_on in data:
                    self.matches += 1
                    if self.matches == self.after_matches:
                        self.start_outage(self.outage_seconds)
                        break
                target.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
