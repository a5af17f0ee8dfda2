"""What the two Schemathesis suites (search API, model server) share: one run of Schemathesis'
CLI against a service on a real socket, a count of the requests the service answered, and
the summary line that reports it.

Per operation, Schemathesis sends its coverage cases (boundary values, and each way to break
the schema: a missing field, a wrong type, an undeclared method or media type) and up to
``max_examples`` generated requests, valid and invalid; every check then holds each answer
to the OpenAPI document: no 5xx, a documented status, media type and headers, a body that
matches the schema, invalid input refused, a declared token enforced, 405 with ``Allow``.

The CLI, not the pytest plugin: its fixture-based schemas (``from_fixture``) rename test
items through ``Item._nodeid``, which pytest 9.2 no longer has; the CLI is also the path a
person reproducing a failure takes (its output has a curl line per failure).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

SEED = 20240501
# Everything but positive_data_acceptance: some valid-looking inputs are refused on purpose
# and the schema cannot say so - a text longer than the model reads (counted in word pieces),
# an id that no document has (404). negative_data_rejection also takes 413: it is how both
# services refuse a list or a text over their limits.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]
"""


def run_schemathesis(base_url: str, token: str, max_examples: int, workdir: Path,
                     timeout: float = 600) -> subprocess.CompletedProcess:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
               f"{base_url}/openapi.json", "--checks", "all",
               "--exclude-checks", "positive_data_acceptance",
               "--max-examples", str(max_examples), "--generation-deterministic",
               "--seed", str(SEED), "--workers", "1", "--no-color",
               "--suppress-health-check", "all", "--request-timeout", "60",
               "-H", f"Authorization: Bearer {token}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=workdir)


class RequestCounter:
    """ASGI wrapper: counts the HTTP requests the application answers, by path and status."""

    def __init__(self, app):
        self.app = app
        self.paths: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.paths[scope["path"]] += 1

        async def counted(message):
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1
            await send(message)
        await self.app(scope, receive, counted)

    @property
    def total(self) -> int:
        """Requests fuzzed: all but the schema's own download."""
        return sum(self.paths.values()) - self.paths["/openapi.json"]


def report(config: pytest.Config, service: str, counter: RequestCounter, seconds: float):
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(counter.statuses.items()))
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[fuzz] {service}: {counter.total} requests fuzzed in {seconds:.1f} s "
              f"(statuses {statuses})", flush=True)


def check_run(result: subprocess.CompletedProcess) -> None:
    """Fails with Schemathesis' own account of every failure and a curl line reproducing it
    (lines cut at 400 characters: a fuzzed URL can be megabytes)."""
    if result.returncode == 0:
        return
    lines = result.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "FAILURES" in line), 0)
    shown = "\n".join(line if len(line) <= 400 else line[:400] + " ..." for line in lines[start:])
    pytest.fail(f"Schemathesis found failures:\n{shown[-30000:]}\n{result.stderr[-3000:]}",
                pytrace=False)


def timed(run):
    started = time.monotonic()
    result = run()
    return result, time.monotonic() - started
