"""A single Elasticsearch node on 127.0.0.1, started and stopped by ragrec.

State lives in ``<cache>/nodes/<name>/``: config, data, logs and ``node.json`` (pid, url), so
``ragrec es status``, the demo and the tests find a running node without configuration.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ragrec.config import LocalNodeSettings
from ragrec.dev.es_node.distribution import ensure_distribution
from ragrec.dev.es_node.java_runtime import find_java_home

# Elasticsearch refuses to run as root; as root we run it as this unprivileged system user.
SERVICE_USER = "ragrec-es"
MAX_HEAP_BYTES = 1 << 30
DEFAULT_PORT = 9200


class NodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeStatus:
    running: bool
    url: str | None = None
    pid: int | None = None
    version: str | None = None
    health: str | None = None


def heap_bytes(heap: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg])", heap.strip().lower())
    if not match:
        raise NodeError(f"heap size {heap!r} must look like 512m or 1g")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if not useradd:
        raise NodeError(
            f"Elasticsearch cannot run as root and there is no user {SERVICE_USER!r} "
            "(useradd not found): run as an ordinary user or create that user"
        )
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        check=True, capture_output=True,
    )
    return pwd.getpwnam(SERVICE_USER)


class LocalNode:
    """One named local node. ``start`` is idempotent: a healthy running node is reused."""

    def __init__(self, settings: LocalNodeSettings, log: Callable[[str], None] = print):
        if heap_bytes(settings.heap) > MAX_HEAP_BYTES:
            raise NodeError(f"heap {settings.heap} is above the 1g bound for a local node")
        self.settings = settings
        self.log = log
        self.dir = settings.home / "nodes" / settings.name
        self.state_file = self.dir / "node.json"
        self.pid_file = self.dir / "run" / "es.pid"

    # -- state -----------------------------------------------------------------------------
    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def status(self) -> NodeStatus:
        state = self._read_state()
        pid = self._pid()
        if not state or pid is None or not _alive(pid):
            return NodeStatus(running=False)
        url = state["url"]
        try:
            health = _get_json(f"{url}/_cluster/health")["status"]
            version = _get_json(url)["version"]["number"]
        except (OSError, ValueError, KeyError):
            return NodeStatus(running=True, url=url, pid=pid, health="unreachable")
        return NodeStatus(running=True, url=url, pid=pid, version=version, health=health)

    @property
    def url(self) -> str | None:
        status = self.status()
        return status.url if status.running else None

    # -- start / stop ----------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> str:
        current = self.status()
        if current.running and current.health in ("green", "yellow"):
            self.log(f"Elasticsearch {current.version} already running at {current.url}")
            return current.url
        if current.running:
            self.stop()

        home = ensure_distribution(self.settings, self.log)
        java_home = find_java_home()
        port = self.settings.port
        if port is None:
            port = DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else free_port()
        elif not _port_is_free(port):
            raise NodeError(f"port {port} on 127.0.0.1 is already in use")
        url = f"http://127.0.0.1:{port}"

        config_dir = self._write_config(home, port)
        for sub in ("data", "logs", "run", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)

        env = dict(os.environ)
        for var in ("ES_URL", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"):
            env.pop(var, None)
        env.update(
            ES_JAVA_HOME=str(java_home),
            ES_PATH_CONF=str(config_dir),
            ES_TMPDIR=str(self.dir / "tmp"),
            ES_JAVA_OPTS=f"-Xms{self.settings.heap} -Xmx{self.settings.heap}",
            HOME=str(self.dir),
        )
        command = [str(home / "bin" / "elasticsearch"), "-d", "-p", str(self.pid_file)]
        if os.geteuid() == 0:
            user = _ensure_service_user()
            self._chown_tree(user.pw_uid, user.pw_gid)
            command = [
                "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                "--clear-groups", *command,
            ]
        self.state_file.write_text(json.dumps({"url": url, "port": port, "home": str(home)}))
        self.log(f"starting Elasticsearch {self.settings.version} on {url} "
                 f"(heap {self.settings.heap}, data {self.dir / 'data'}) ...")
        launcher_log = self.dir / "launcher.log"
        with open(launcher_log, "wb") as out:
            result = subprocess.run(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                check=False, cwd=self.dir,
            )
        if result.returncode != 0:
            raise NodeError(
                f"Elasticsearch failed to start (exit {result.returncode}); "
                f"see {launcher_log} and {self.dir / 'logs'}:\n{self._tail(launcher_log)}"
            )
        self._wait_healthy(url, timeout)
        self.log(f"Elasticsearch is up at {url}")
        return url

    def _write_config(self, home: Path, port: int) -> Path:
        config_dir = self.dir / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        for name in ("jvm.options", "log4j2.properties"):
            shutil.copy2(home / "config" / name, config_dir / name)
        (config_dir / "jvm.options.d").mkdir(exist_ok=True)
        lines = [
            f"cluster.name: ragrec-{self.settings.name}",
            f"node.name: ragrec-{self.settings.name}",
            "network.host: 127.0.0.1",
            f"http.port: {port}",
            f"transport.port: {free_port()}",
            "discovery.type: single-node",
            f"path.data: {self.dir / 'data'}",
            f"path.logs: {self.dir / 'logs'}",
            "xpack.security.enabled: false",
            # A dev node on a shared disk must not turn indices read-only at 95 % usage.
            "cluster.routing.allocation.disk.threshold_enabled: false",
        ]
        modules = home / "modules"
        if (modules / "ingest-geoip").exists():
            lines.append("ingest.geoip.downloader.enabled: false")  # no internet
        if (modules / "x-pack-ml").exists():
            lines.append("xpack.ml.enabled: false")
        (config_dir / "elasticsearch.yml").write_text("\n".join(lines) + "\n")
        return config_dir

    def _chown_tree(self, uid: int, gid: int) -> None:
        for dirpath, _dirnames, filenames in os.walk(self.dir):
            os.chown(dirpath, uid, gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), uid, gid)
        # The node user must be able to reach its own directory.
        for parent in (self.dir.parent, self.dir.parent.parent):
            parent.chmod(parent.stat().st_mode | 0o755)

    def _wait_healthy(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                health = _get_json(f"{url}/_cluster/health?wait_for_status=yellow&timeout=5s")
                if health.get("status") in ("green", "yellow"):
                    return
                last = f"status {health.get('status')}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise NodeError(f"Elasticsearch at {url} not healthy after {timeout:.0f}s: {last}")

    def stop(self, timeout: float = 60.0) -> bool:
        pid = self._pid()
        if pid is None or not _alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        self.log(f"stopping Elasticsearch (pid {pid}) ...")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def destroy(self) -> None:
        """Stop the node and delete its directory (data included)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _tail(path: Path, lines: int = 20) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
