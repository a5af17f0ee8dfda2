"""Runs DAGs under a real Airflow 3 deployment on this machine - ``airflow standalone``
(API server, scheduler with the LocalExecutor, DAG processor, triggerer) on the SQLite
metadata DB of ``AIRFLOW_HOME`` - then prints the task states of each run.

    python -m ragrec.dev.scheduler_run kb_ingest --conf '{"all_documents": true}'
    python -m ragrec.dev.scheduler_run kb_ingest model_rollout --conf '{...}' --conf '{...}'
    python -m ragrec.dev.scheduler_run kb_ingest --backfill 2026-03-01T00:00 2026-03-01T01:00

It creates the ``model_endpoint`` pool, unpauses the DAGs, triggers them from the CLI one
after the other (or creates one ``airflow backfill``), waits for each run to finish and
stops Airflow again. ``--report DAG`` adds every run of DAG (say, one a rollout triggered).
The exit status is 0 only when every run it started succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from ragrec.airflow.runtime import MODEL_POOL

FINISHED = ("success", "failed")
LOCKED = "database is locked"
CLI_TRIES = 4


def _json_rows(text: str) -> list[dict]:
    """The JSON array an ``airflow ... -o json`` command prints (after any log lines)."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.lstrip().startswith(("[{", "[]")):
            try:
                return json.loads("\n".join(lines[number:]))
            except ValueError:
                continue
    return []


def _seconds(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(),
                 1)


def _free_port() -> int:
    from ragrec.dev.es_node.node import free_port

    return free_port()


class StandaloneAirflow:
    """``airflow standalone`` for the life of a ``with`` block, and the CLI calls an operator
    would make against it."""

    def __init__(self, timeout: float = 900.0, log_path: Path | None = None, say=print):
        env = os.environ.copy()
        port = str(_free_port())
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
            "AIRFLOW__API__PORT": port,
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # Only what this script triggers or backfills runs: no cron run of an unpaused
            # DAG's latest interval (asset-triggered runs still happen).
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        })
        if env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite").startswith("sqlite"):
            wait = "ragrec.dev.sqlite_wait.CONNECT_ARGS"
            env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", wait)
            env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC", wait)
        # One signing secret for the API server and the task workers it hands tokens to.
        env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
        self.env = env
        self.deadline = time.monotonic() + timeout
        self.log_path = log_path or Path(env.get("AIRFLOW_HOME", ".airflow")) / "standalone.log"
        self.say = say
        self.process: subprocess.Popen | None = None

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

    def __enter__(self) -> StandaloneAirflow:
        self.airflow("db", "migrate")
        self.airflow("pools", "set", MODEL_POOL, "2", "model endpoint calls")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"starting airflow standalone (LocalExecutor, log: {self.log_path})")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"],
                                            env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)

    def _tick(self, what: str) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited; see {self.log_path}")
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"{what}; see {self.log_path}")
        time.sleep(3)

    def wait_parsed(self, *dag_ids: str) -> None:
        missing = set(dag_ids)
        while missing:
            listed = self.airflow("dags", "list", "-o", "plain", check=False)
            missing = {d for d in missing if d not in listed}
            if missing:
                self._tick(f"{sorted(missing)} never parsed")
        for dag_id in dag_ids:
            self.airflow("dags", "unpause", dag_id)

    def runs(self, dag_id: str) -> list[dict]:
        return _json_rows(self.airflow("dags", "list-runs", dag_id, "-o", "json", check=False))

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

    def wait(self, dag_id: str, run_ids: list[str]) -> dict[str, str]:
        states = {run_id: "queued" for run_id in run_ids}
        while any(s not in FINISHED for s in states.values()):
            self._tick(f"{dag_id} runs still {states}")
            for run in self.runs(dag_id):
                if run.get("run_id") in states:
                    states[run["run_id"]] = run["state"]
        return states

    def describe(self, dag_id: str, run_id: str, state: str | None = None) -> dict:
        tasks = _json_rows(self.airflow("tasks", "states-for-dag-run", dag_id, run_id, "-o",
                                        "json", check=False))
        if state is None:
            state = next((r["state"] for r in self.runs(dag_id) if r["run_id"] == run_id), None)
        rows = []
        for task in sorted(tasks, key=lambda t: (t.get("start_date") or "~", t["task_id"])):
            index = str(task.get("map_index", ""))
            rows.append({"task_id": task["task_id"],
                         "map_index": int(index) if index.lstrip("-").isdigit() else -1,
                         "state": task.get("state"),
                         "seconds": _seconds(task.get("start_date"), task.get("end_date"))})
        return {"dag_id": dag_id, "run_id": run_id, "state": state, "tasks": rows}


def run_dags(dag_ids: list[str], confs: list[dict], timeout: float = 900.0,
             backfill: tuple[str, str] | None = None, report: tuple[str, ...] = (),
             log_path: Path | None = None, say=print) -> list[dict]:
    """Triggers each DAG in turn (or backfills the one DAG) and returns every run's outcome;
    runs of the ``report`` DAGs follow, whoever started them."""
    confs = list(confs) + [{}] * (len(dag_ids) - len(confs))
    if backfill and len(dag_ids) != 1:
        raise ValueError("a backfill takes exactly one DAG")
    outcomes = []
    with StandaloneAirflow(timeout, log_path, say) as airflow:
        airflow.wait_parsed(*dag_ids, *report)
        for dag_id, conf in zip(dag_ids, confs, strict=True):
            run_ids = (airflow.backfill(dag_id, *backfill, conf) if backfill
                       else [airflow.trigger(dag_id, conf)])
            for run_id, state in airflow.wait(dag_id, run_ids).items():
                outcomes.append(airflow.describe(dag_id, run_id, state))
        started = {o["run_id"] for o in outcomes}
        for dag_id in report:
            for run in airflow.runs(dag_id):
                if run["run_id"] not in started:
                    outcomes.append({**airflow.describe(dag_id, run["run_id"], run["state"]),
                                     "reported": True})
    return outcomes


def format_outcome(outcome: dict) -> str:
    lines = [f"{outcome['dag_id']} {outcome['run_id']}: {outcome['state']}"]
    for task in outcome["tasks"]:
        name = task["task_id"] + (f"[{task['map_index']}]" if task["map_index"] >= 0 else "")
        took = f"{task['seconds']:.1f} s" if task["seconds"] is not None else "-"
        lines.append(f"  {name:<24} {str(task['state']):<16} {took:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag_ids", nargs="+", metavar="DAG")
    parser.add_argument("--conf", action="append", default=[],
                        help="run configuration (JSON), one per DAG in order")
    parser.add_argument("--backfill", nargs=2, metavar=("FROM", "TO"),
                        help="create a backfill over these logical dates instead of a trigger")
    parser.add_argument("--report", action="append", default=[], metavar="DAG",
                        help="also print the runs of DAG (e.g. one a rollout triggers)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if len(args.conf) > len(args.dag_ids):
        parser.error("more --conf than DAGs")
    outcomes = run_dags(args.dag_ids, [json.loads(c) for c in args.conf], args.timeout,
                        tuple(args.backfill) if args.backfill else None, tuple(args.report),
                        say=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(outcomes))
    else:
        print("\n".join(format_outcome(o) for o in outcomes))
    started = [o for o in outcomes if not o.get("reported")]
    return 0 if started and all(o["state"] == "success" for o in started) else 1


if __name__ == "__main__":
    sys.exit(main())
