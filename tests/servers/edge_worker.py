"""The edge Worker (deploy/edge) running in workerd through Miniflare, as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "deploy" / "edge"
NODE = shutil.which("node")


def edge_ready() -> str | None:
    """Why the edge cannot run here (only: no Node.js), or None. With Node.js, a missing
    runtime is installed now (``npm ci``, as scripts/bootstrap does) and must work."""
    if NODE is None or shutil.which("npm") is None:
        return "Node.js is not installed: the edge Worker tests need node and npm"
    if not (EDGE / "node_modules" / "miniflare").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=EDGE, check=True, timeout=600)
    return None


class EdgeWorker:
    def __init__(self, origin_url: str, origin_token: str = "", api_tokens=("edge-client",),
                 rate: float = 50, burst: int = 100, ttl: int = 300, version_ttl: float = 0):
        self.env = {**os.environ, "EDGE_ORIGIN_URL": origin_url,
                    "EDGE_ORIGIN_TOKEN": origin_token, "EDGE_API_TOKENS": ",".join(api_tokens),
                    "EDGE_RATE_PER_SECOND": str(rate), "EDGE_RATE_BURST": str(burst),
                    "EDGE_CACHE_TTL": str(ttl), "EDGE_VERSION_TTL": str(version_ttl)}
        self.process: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> EdgeWorker:
        self.process = subprocess.Popen([NODE, "local.mjs"], cwd=EDGE, env=self.env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        found: list[str] = []

        def read_first_line():
            found.append(self.process.stdout.readline().strip())

        reader = threading.Thread(target=read_first_line, daemon=True)
        reader.start()
        reader.join(60)
        if not found or not found[0].startswith("listening "):
            self.process.kill()
            raise RuntimeError(f"edge worker did not start: {found} "
                               f"{self.process.stderr.read()[-2000:]}")
        self.url = found[0].split(" ", 1)[1]
        return self

    def __exit__(self, *exc) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
