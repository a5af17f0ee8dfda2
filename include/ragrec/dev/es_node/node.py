"""A local Elasticsearch on 127.0.0.1, started and stopped by ragrec: one node, or several
nodes forming one cluster (``RAGREC_ES_NODES``, ``ragrec es start --nodes 3``).

State lives in ``<cache>/nodes/<name>/``: ``node.json`` (every member's URL and ports, so
``ragrec es status``, the demo, the tests and the client find a running cluster without
configuration) and each member's config, data, logs and pid file - in that folder itself for
a single node, in ``node-<i>/`` below it for a member of a larger cluster. A member can be
stopped and started again on its own (``ragrec es stop --node 1``), with its ports and data,
which is how the tests take a node away from a running cluster.
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
    """``running``: some member is alive; ``url``/``pid``: the first live member's;
    ``urls``: every member's (alive or not), the hosts a client is given; ``alive``: how many
    members run, of ``nodes``."""

    running: bool
    url: str | None = None
    pid: int | None = None
    version: str | None = None
    health: str | None = None
    urls: tuple[str, ...] = ()
    nodes: int = 0
    alive: int = 0


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


@dataclass(frozen=True)
class Member:
    """One node of the local cluster: its number, folder and ports."""

    number: int
    dir: Path
    port: int
    transport_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / "es.pid"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid()
        return pid is not None and _alive(pid)


class LocalNode:
    """One named local Elasticsearch of ``settings.nodes`` members. ``start`` is
    idempotent: a healthy running cluster is reused, members that stopped are started again."""

    def __init__(self, settings: LocalNodeSettings, log: Callable[[str], None] = print):
        if heap_bytes(settings.heap) > MAX_HEAP_BYTES:
            raise NodeError(f"heap {settings.heap} is above the 1g bound for a local node")
        if settings.nodes < 1:
            raise NodeError(f"a local cluster needs at least one node, not {settings.nodes}")
        self.settings = settings
        self.log = log
        self.dir = settings.home / "nodes" / settings.name
        self.state_file = self.dir / "node.json"

    # -- state -----------------------------------------------------------------------------
    def _read_state(self) -> dict | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if "members" not in state and "port" in state:  # a single node's older state
            state["members"] = [{"port": state["port"], "transport_port": None}]
        return state

    def _member_dir(self, number: int, count: int) -> Path:
        return self.dir if count == 1 else self.dir / f"node-{number}"

    def members(self) -> list[Member]:
        """The members the state file records (none before the first start)."""
        state = self._read_state() or {}
        recorded = state.get("members", [])
        return [Member(i, self._member_dir(i, len(recorded)), m["port"],
                       m.get("transport_port") or 0) for i, m in enumerate(recorded)]

    def status(self) -> NodeStatus:
        members = self.members()
        live = [m for m in members if m.alive()]
        if not live:
            return NodeStatus(running=False, urls=tuple(m.url for m in members),
                              nodes=len(members))
        first = live[0]
        common = dict(running=True, url=first.url, pid=first.pid(),
                      urls=tuple(m.url for m in members), nodes=len(members), alive=len(live))
        for member in live:
            try:
                health = _get_json(f"{member.url}/_cluster/health?timeout=5s")["status"]
                version = _get_json(member.url)["version"]["number"]
            except (OSError, ValueError, KeyError):
                continue
            return NodeStatus(**{**common, "url": member.url, "pid": member.pid()},
                              version=version, health=health)
        return NodeStatus(**common, health="unreachable")

    @property
    def url(self) -> str | None:
        status = self.status()
        return status.url if status.running else None

    @property
    def urls(self) -> list[str]:
        """Every member's URL while the cluster runs (a client is given them all, so it
        goes on through a member that stopped); empty when nothing runs."""
        status = self.status()
        return list(status.urls) if status.running else []

    # -- start / stop ----------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> str:
        """Starts the cluster (or the members of it that are not running) and waits until
        it is healthy with every member in it; returns the first member's URL."""
        current = self.status()
        wanted = self.settings.nodes
        if current.running and current.nodes != wanted:
            raise NodeError(
                f"the local Elasticsearch {self.settings.name!r} runs {current.nodes} "
                f"node(s), not {wanted}: stop it first (`ragrec es stop`)")
        if current.running and current.alive == wanted \
                and current.health in ("green", "yellow"):
            self.log(f"Elasticsearch {current.version} already running at {current.url}"
                     + (f" ({wanted} nodes)" if wanted > 1 else ""))
            return current.url
        members = self.members() if current.running else self._new_members(wanted)
        home = ensure_distribution(self.settings, self.log)
        java_home = find_java_home()
        down = [m for m in members if not m.alive()]
        for member in down:
            if not _port_is_free(member.port):
                raise NodeError(f"port {member.port} on 127.0.0.1 is already in use")
            self._write_config(home, member, members)
            for sub in ("data", "logs", "run", "tmp"):
                (member.dir / sub).mkdir(parents=True, exist_ok=True)
            member.pid_file.unlink(missing_ok=True)
        self._write_state(home, members)
        if os.geteuid() == 0:
            user = _ensure_service_user()
            self._chown_tree(user.pw_uid, user.pw_gid)
        what = f"{len(down)} nodes of Elasticsearch" if wanted > 1 else "Elasticsearch"
        self.log(f"starting {what} {self.settings.version} on "
                 f"{', '.join(m.url for m in down)} (heap {self.settings.heap}"
                 f"{' each' if len(down) > 1 else ''}, data "
                 f"{', '.join(str(m.dir / 'data') for m in down)}) ...")
        # Members start side by side: each waits for the others to form the cluster.
        launches = [(m, self._launch(home, java_home, m)) for m in down]
        for member, (process, launcher_log) in launches:
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                returncode = "timeout"
            if returncode != 0:
                raise NodeError(
                    f"Elasticsearch node {member.number} failed to start (exit {returncode}); "
                    f"see {launcher_log} and {member.dir / 'logs'}:\n"
                    f"{self._tail(launcher_log)}")
        self._wait_healthy(members[0].url, timeout, nodes=wanted)
        self.log(f"Elasticsearch is up at {members[0].url}"
                 + (f" ({wanted} nodes: {', '.join(m.url for m in members)})"
                    if wanted > 1 else ""))
        return members[0].url

    def start_member(self, number: int, timeout: float = 180.0) -> str:
        """Starts one stopped member again (its ports and data as before) and waits until
        it has joined; returns its URL."""
        members = self.members()
        if not 0 <= number < len(members):
            raise NodeError(f"no node {number}: the cluster has {len(members)}")
        member = members[number]
        if not member.alive():
            home = ensure_distribution(self.settings, self.log)
            self._write_config(home, member, members)
            if os.geteuid() == 0:
                user = _ensure_service_user()
                self._chown_tree(user.pw_uid, user.pw_gid)
            process, launcher_log = self._launch(home, find_java_home(), member)
            if process.wait(timeout=timeout) != 0:
                raise NodeError(f"Elasticsearch node {number} failed to start; see "
                                f"{launcher_log}:\n{self._tail(launcher_log)}")
        alive = sum(1 for m in members if m.alive())
        self._wait_healthy(member.url, timeout, nodes=alive)
        return member.url

    def _new_members(self, count: int) -> list[Member]:
        first = self.settings.port
        if first is None:
            first = DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else free_port()
        elif not _port_is_free(first):
            raise NodeError(f"port {first} on 127.0.0.1 is already in use")
        ports = [first]
        while len(ports) < count:
            port = free_port()
            if port not in ports:
                ports.append(port)
        transport: list[int] = []
        while len(transport) < count:
            port = free_port()
            if port not in ports and port not in transport:
                transport.append(port)
        return [Member(i, self._member_dir(i, count), ports[i], transport[i])
                for i in range(count)]

    def _write_state(self, home: Path, members: list[Member]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({
            "url": members[0].url, "home": str(home),
            "members": [{"port": m.port, "transport_port": m.transport_port}
                        for m in members]}))

    def _launch(self, home: Path, java_home: Path,
                member: Member) -> tuple[subprocess.Popen, Path]:
        env = dict(os.environ)
        for var in ("ES_URL", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"):
            env.pop(var, None)
        env.update(
            ES_JAVA_HOME=str(java_home),
            ES_PATH_CONF=str(member.dir / "config"),
            ES_TMPDIR=str(member.dir / "tmp"),
            ES_JAVA_OPTS=f"-Xms{self.settings.heap} -Xmx{self.settings.heap}",
            HOME=str(member.dir),
        )
        command = [str(home / "bin" / "elasticsearch"), "-d", "-p", str(member.pid_file)]
        if os.geteuid() == 0:
            user = _ensure_service_user()
            command = [
                "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                "--clear-groups", *command,
            ]
        launcher_log = member.dir / "launcher.log"
        with open(launcher_log, "wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=member.dir)
        return process, launcher_log

    def _write_config(self, home: Path, member: Member, members: list[Member]) -> None:
        config_dir = member.dir / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        for name in ("jvm.options", "log4j2.properties"):
            shutil.copy2(home / "config" / name, config_dir / name)
        (config_dir / "jvm.options.d").mkdir(exist_ok=True)
        name = f"ragrec-{self.settings.name}"
        transport = member.transport_port or free_port()
        lines = [
            f"cluster.name: {name}",
            f"node.name: {name}" + (f"-{member.number}" if len(members) > 1 else ""),
            "network.host: 127.0.0.1",
            f"http.port: {member.port}",
            f"transport.port: {transport}",
            f"path.data: {member.dir / 'data'}",
            f"path.logs: {member.dir / 'logs'}",
            "xpack.security.enabled: false",
            # A dev node on a shared disk must not turn indices read-only at 95 % usage.
            "cluster.routing.allocation.disk.threshold_enabled: false",
        ]
        if len(members) == 1:
            lines.append("discovery.type: single-node")
        else:
            seeds = ", ".join(f'"127.0.0.1:{m.transport_port}"' for m in members)
            masters = ", ".join(f'"{name}-{m.number}"' for m in members)
            lines += [f"discovery.seed_hosts: [{seeds}]",
                      # Read only when the cluster first forms; ignored once it has.
                      f"cluster.initial_master_nodes: [{masters}]"]
        modules = home / "modules"
        if (modules / "ingest-geoip").exists():
            lines.append("ingest.geoip.downloader.enabled: false")  # no internet
        if (modules / "x-pack-ml").exists():
            lines.append("xpack.ml.enabled: false")
        (config_dir / "elasticsearch.yml").write_text("\n".join(lines) + "\n")

    def _chown_tree(self, uid: int, gid: int) -> None:
        for dirpath, _dirnames, filenames in os.walk(self.dir):
            os.chown(dirpath, uid, gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), uid, gid)
        # The node user must be able to reach its own directory.
        for parent in (self.dir.parent, self.dir.parent.parent):
            parent.chmod(parent.stat().st_mode | 0o755)

    def _wait_healthy(self, url: str, timeout: float, nodes: int = 1) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                health = _get_json(f"{url}/_cluster/health?wait_for_status=yellow"
                                   f"&wait_for_nodes=%3E%3D{nodes}&timeout=5s")
                if health.get("status") in ("green", "yellow") \
                        and health.get("number_of_nodes", 1) >= nodes:
                    return
                last = f"status {health.get('status')}, {health.get('number_of_nodes')} nodes"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise NodeError(f"Elasticsearch at {url} not healthy after {timeout:.0f}s: {last}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stops every member; False when none was running."""
        stopped = [self.stop_member(m.number, timeout) for m in self.members()]
        return any(stopped)

    def stop_member(self, number: int, timeout: float = 60.0, kill: bool = False) -> bool:
        """Stops one member (SIGTERM, then SIGKILL after ``timeout``; ``kill``: SIGKILL at
        once, a crash); False when it was not running."""
        members = self.members()
        if not 0 <= number < len(members):
            raise NodeError(f"no node {number}: the cluster has {len(members)}")
        member = members[number]
        pid = member.pid()
        if pid is None or not _alive(pid):
            member.pid_file.unlink(missing_ok=True)
            return False
        which = f"node {number}" if len(members) > 1 else "Elasticsearch"
        self.log(f"{'killing' if kill else 'stopping'} {which} (pid {pid}) ...")
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        member.pid_file.unlink(missing_ok=True)
        return True

    def destroy(self) -> None:
        """Stop the cluster and delete its directory (data included)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _tail(path: Path, lines: int = 20) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
