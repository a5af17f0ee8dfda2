"""A real Airflow 3 deployment on this machine, for the life of a ``with`` block, on the
SQLite metadata DB of ``AIRFLOW_HOME``:

- ``executor="local"``: ``airflow standalone`` (API server, scheduler with the LocalExecutor,
  DAG processor, triggerer);
- ``executor="celery"``: the same components started one by one with the CeleryExecutor, a
  Redis broker (``RedisServer``) and ``workers`` Celery workers, each reporting its own
  hostname (``worker-0``, ``worker-1``, ...) for the task instances it runs, so a run shows
  where each task went; ``kill_worker`` takes one away with every task it is running.

Operators' actions go through the CLI (trigger, backfill, pools), an unpause through the
REST API as the UI's toggle does; what a run did is read from the REST API too (cheap to
poll: an ``airflow`` CLI call costs seconds of CPU on 2 cores). The API answers only on
127.0.0.1, with the simple auth manager's "everyone is admin" mode of a local deployment.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ragrec.airflow.runtime import MODEL_POOL

FINISHED = ("success", "failed")
LOCKED = "database is locked"
CLI_TRIES = 4
EXECUTORS = ("local", "celery")


def _free_port() -> int:
    from ragrec.dev.es_node.node import free_port

    return free_port()


def _seconds(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(),
                 1)


def _kill_tree(pid: int, sig: int = signal.SIGKILL) -> int:
    """Sends ``sig`` to ``pid`` and every process below it (a Celery worker's task runners
    live in process groups of their own); how many processes it reached."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for process in tree:
        try:
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return len(tree)


def stop_process_tree(pid: int, grace: float = 30.0) -> None:
    """Stops a process started as a session leader (``start_new_session``) and everything
    it started: SIGTERM to its group, then, after ``grace`` seconds, SIGKILL to what is
    left of the group and of its descendants (an Airflow component that outlives its
    parent, a task runner in a group of its own)."""
    import psutil

    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _gone, alive = psutil.wait_procs(tree, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class LocalAirflow:
    """A deployment with ``executor`` (``local`` or ``celery``: ``workers`` workers of
    ``worker_slots`` task slots each); ``heartbeat_timeout``: seconds without a task's
    heartbeat after which the scheduler fails (and retries) it - Airflow's 300 unless set."""

    def __init__(self, timeout: float = 900.0, log_path: Path | None = None, say=print,
                 executor: str = "local", workers: int = 2, worker_slots: int = 2,
                 heartbeat_timeout: int | None = None):
        if executor not in EXECUTORS:
            raise ValueError(f"executor {executor!r}: one of {', '.join(EXECUTORS)}")
        env = os.environ.copy()
        port = str(_free_port())
        env.update({
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": port,
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager."
                "SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # Only what this script triggers or backfills runs: no cron run of an unpaused
            # DAG's latest interval (asset-triggered runs still happen).
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        })
        if heartbeat_timeout is not None:
            env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = str(heartbeat_timeout)
            env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"] = "5"
        if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith("sqlite"):
            wait = "ragrec.dev.sqlite_wait.CONNECT_ARGS"
            env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", wait)
            env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC", wait)
        # One signing secret for the API server and the task workers it hands tokens to.
        env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
        if executor == "celery":
            env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(worker_slots)
        else:
            env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
        self.env = env
        self.executor = executor
        self.workers = workers
        self.api = f"http://127.0.0.1:{port}/api/v2"
        self.deadline = time.monotonic() + timeout
        home = Path(env.get("AIRFLOW_HOME", ".airflow"))
        self.log_path = log_path or home / "standalone.log"
        self.say = say
        self.processes: dict[str, subprocess.Popen] = {}
        self.redis = None
        self._http = httpx.Client(timeout=30)

    # -- the CLI and the REST API ----------------------------------------------------------
    def airflow(self, *args: str, check: bool = True) -> str:
        """One CLI call; one that loses SQLite's lock to the running deployment (its
        transaction rolled back, nothing written) is made again after a pause."""
        for attempt in range(1, CLI_TRIES + 1):
            result = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env,
                                    capture_output=True, text=True)
            if result.returncode == 0 or LOCKED not in result.stderr or attempt == CLI_TRIES:
                break
            self.say(f"airflow {args[0]} {args[1] if len(args) > 1 else ''}: {LOCKED}, "
                     f"trying again ({attempt}/{CLI_TRIES - 1})")
            time.sleep(2 ** attempt)
        if check and result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def get(self, path: str, **params) -> dict | None:
        """A REST read; None for a 404 (a DAG not parsed yet). A connection that fails (the
        API server busy on 2 cores) is tried again, three times."""
        for attempt in range(3):
            try:
                response = self._http.get(self.api + path, params=params)
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
                time.sleep(2)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def _pages(self, path: str, key: str) -> list[dict]:
        rows: list[dict] = []
        while True:
            page = self.get(path, limit=100, offset=len(rows)) or {}
            rows += page.get(key, [])
            if not page.get(key) or len(rows) >= page.get("total_entries", 0):
                return rows

    # -- the deployment --------------------------------------------------------------------
    def _spawn(self, name: str, *args: str, extra: dict | None = None) -> None:
        folder = self.log_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path if name == "standalone" else folder / f"{name}.log"
        with open(log_file, "w") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args], env={**self.env, **(extra or {})},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> LocalAirflow:
        self.airflow("db", "migrate")
        self.airflow("pools", "set", MODEL_POOL, "2", "model endpoint calls")
        try:
            if self.executor == "local":
                self.say(f"starting airflow standalone (LocalExecutor, log: {self.log_path})")
                self._spawn("standalone", "standalone")
            else:
                self._start_celery()
            self._wait_api()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_celery(self) -> None:
        from ragrec.dev.redis_server import RedisServer

        self.redis = RedisServer(self.log_path.parent / "redis").start()
        self.env["AIRFLOW__CELERY__BROKER_URL"] = f"{self.redis.url}/0"
        self.env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"{self.redis.url}/1"
        self.say(f"starting Airflow with the CeleryExecutor: api-server, scheduler, "
                 f"dag-processor, triggerer, {self.workers} Celery workers, Redis at "
                 f"{self.redis.url} (logs: {self.log_path.parent})")
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            self._spawn(component, component)
        for number in range(self.workers):
            self.start_worker(number)

    def start_worker(self, number: int) -> None:
        name = f"worker-{number}"
        self._spawn(name, "celery", "worker", "--celery-hostname", f"{name}@%h",
                    "--skip-serve-logs", "--without-mingle", "--without-gossip",
                    extra={"RAGREC_WORKER_NAME": name,
                           "AIRFLOW__CORE__HOSTNAME_CALLABLE":
                               "ragrec.dev.worker_hostname.name"})

    def kill_worker(self, number: int) -> int:
        """SIGKILLs worker ``number`` and every task it runs (a machine lost); how many
        processes went."""
        process = self.processes.pop(f"worker-{number}")
        killed = _kill_tree(process.pid)
        process.wait(timeout=30)
        self.say(f"killed worker-{number} ({killed} processes)")
        return killed

    def __exit__(self, *exc) -> None:
        for process in reversed(list(self.processes.values())):
            stop_process_tree(process.pid, grace=60)
            process.wait(timeout=30)
        self.processes.clear()
        if self.redis is not None:
            self.redis.stop()
        self._http.close()

    def _tick(self, what: str) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited; see {self.log_path.parent}")
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"{what}; see {self.log_path.parent}")
        time.sleep(3)

    def _wait_api(self) -> None:
        while True:
            try:
                if self._http.get(self.api + "/monitor/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            self._tick("the API server never answered")

    # -- runs --------------------------------------------------------------------------------
    def wait_parsed(self, *dag_ids: str) -> None:
        missing = set(dag_ids)
        while missing:
            missing = {d for d in missing if self.get(f"/dags/{d}") is None}
            if missing:
                self._tick(f"{sorted(missing)} never parsed")
        for dag_id in dag_ids:  # as the UI's toggle does (a CLI call costs seconds)
            response = self._http.patch(f"{self.api}/dags/{dag_id}", json={"is_paused": False})
            response.raise_for_status()

    def runs(self, dag_id: str) -> list[dict]:
        return [{"run_id": r["dag_run_id"], "state": r["state"]}
                for r in self._pages(f"/dags/{dag_id}/dagRuns", "dag_runs")]

    def trigger(self, dag_id: str, conf: dict) -> str:
        run_id = f"scheduler_run__{int(time.time() * 1000)}"
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf))
        self.say(f"triggered {dag_id} run {run_id}")
        return run_id

    def backfill(self, dag_id: str, start: str, end: str, conf: dict) -> list[str]:
        """Creates a backfill over [start, end] (logical dates, inclusive); its run ids."""
        before = {r["run_id"] for r in self.runs(dag_id)}
        self.airflow("backfill", "create", "--dag-id", dag_id, "--from-date", start,
                     "--to-date", end, "--dag-run-conf", json.dumps(conf),
                     "--max-active-runs", "1", "--reprocess-behavior", "completed")
        created = [r["run_id"] for r in self.runs(dag_id) if r["run_id"] not in before]
        self.say(f"backfill of {dag_id} [{start}, {end}]: {len(created)} runs")
        return created

    def wait(self, dag_id: str, run_ids: list[str], on_poll=None) -> dict[str, str]:
        """Waits for the runs to finish; ``on_poll(self)`` is called at each poll (a test's
        fault injection)."""
        states = {run_id: "queued" for run_id in run_ids}
        while any(s not in FINISHED for s in states.values()):
            self._tick(f"{dag_id} runs still {states}")
            if on_poll is not None:
                on_poll(self)
            for run in self.runs(dag_id):
                if run.get("run_id") in states:
                    states[run["run_id"]] = run["state"]
        return states

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._pages(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")

    def tries(self, dag_id: str, run_id: str, task: dict) -> list[dict]:
        """Every try of one task instance, oldest first: number, state, hostname, times."""
        if (task.get("try_number") or 0) <= 1:
            found = [task]
        else:
            index = task.get("map_index", -1)
            path = (f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task['task_id']}"
                    + (f"/{index}" if index is not None and index >= 0 else "") + "/tries")
            found = self._pages(path, "task_instances")
        return [{"try_number": t.get("try_number"), "state": t.get("state"),
                 "hostname": t.get("hostname") or None, "start_date": t.get("start_date"),
                 "end_date": t.get("end_date")}
                for t in sorted(found, key=lambda t: t.get("try_number") or 0)]

    def describe(self, dag_id: str, run_id: str, state: str | None = None) -> dict:
        if state is None:
            state = next((r["state"] for r in self.runs(dag_id) if r["run_id"] == run_id), None)
        rows = []
        tasks = self.task_instances(dag_id, run_id)
        for task in sorted(tasks, key=lambda t: (t.get("start_date") or "~", t["task_id"],
                                                 t.get("map_index", -1))):
            index = task.get("map_index")
            rows.append({"task_id": task["task_id"],
                         "map_index": index if isinstance(index, int) else -1,
                         "state": task.get("state"),
                         "seconds": _seconds(task.get("start_date"), task.get("end_date")),
                         "hostname": task.get("hostname") or None,
                         "try_number": task.get("try_number"),
                         "tries": self.tries(dag_id, run_id, task)})
        return {"dag_id": dag_id, "run_id": run_id, "state": state, "tasks": rows}
