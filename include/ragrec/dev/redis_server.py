"""A throw-away Redis server on 127.0.0.1 (Debian's ``redis-server``): the Celery broker of
the local multi-worker Airflow deployment. No persistence, its own folder, a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class RedisNotFound(RuntimeError):
    pass


class RedisServer:
    def __init__(self, folder: Path | None = None):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFound("redis-server is not installed (Debian: apt-get install "
                                "redis-server); the Celery deployment needs it as its broker")
        self.binary = binary
        self.folder = Path(folder or tempfile.mkdtemp(prefix="ragrec-redis-"))
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> RedisServer:
        from ragrec.dev.es_node.node import free_port

        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        log = open(self.folder / "redis.log", "wb")  # noqa: SIM115 - the server's whole life
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.folder / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
