"""The project's real model server (``ragrec serve-model``) as a subprocess on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


class ModelServerProcess:
    def __init__(self, model: str, token: str, admin_token: str, service: str = "kb-embed",
                 extra_env: dict | None = None):
        from ragrec.dev.es_node.node import free_port

        self.port = free_port()
        self.model, self.token, self.admin_token, self.service = model, token, admin_token, service
        self.extra_env = extra_env or {}
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    @property
    def predict_url(self) -> str:
        return f"{self.base}/api/predict/{self.service}"

    def __enter__(self) -> ModelServerProcess:
        env = {**os.environ, "RAGREC_SERVE_TOKEN": self.token,
               "RAGREC_ADMIN_TOKEN": self.admin_token, **self.extra_env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ragrec.cli", "serve-model", "--model", self.model,
             "--port", str(self.port), "--service", self.service],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"model server exited: {self.process.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.process.kill()
        raise RuntimeError("model server did not come up in 120 s")

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
