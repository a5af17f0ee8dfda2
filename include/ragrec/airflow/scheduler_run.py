"""Runs one DAG under a real Airflow 3 deployment on this machine - ``airflow standalone``
(API server, scheduler with the LocalExecutor, DAG processor, triggerer) on the SQLite
metadata DB of ``AIRFLOW_HOME`` - then prints the task states of that run.

    python -m ragrec.airflow.scheduler_run kb_ingest --conf '{"all_documents": true}'

It creates the ``model_endpoint`` pool, unpauses the DAG, triggers it from the CLI, waits for
the run to finish and stops Airflow again. The exit status is 0 only when the run succeeded.
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


def _airflow(*args: str, env: dict, check: bool = True) -> str:
    result = subprocess.run([sys.executable, "-m", "airflow", *args], env=env,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


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


def _free_port() -> int:
    from ragrec.es_node.node import free_port

    return free_port()


def run_once(dag_id: str, conf: dict, timeout: float = 900.0, log_path: Path | None = None,
             say=print) -> dict:
    env = os.environ.copy()
    home = Path(env.get("AIRFLOW_HOME", ".airflow"))
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__API__PORT": str(_free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    })
    # One signing secret for the API server and the task workers it hands tokens to.
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = (
        f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}/execution/")
    _airflow("db", "migrate", env=env)
    _airflow("pools", "set", MODEL_POOL, "2", "model endpoint calls", env=env)
    log_path = log_path or home / f"standalone-{dag_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    say(f"starting airflow standalone (LocalExecutor, log: {log_path})")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while dag_id not in _airflow("dags", "list", "-o", "plain", env=env, check=False):
            if process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited; see {log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} was never parsed; see {log_path}")
            time.sleep(2)
        _airflow("dags", "unpause", dag_id, env=env)
        run_id = f"scheduler_run__{int(time.time())}"
        _airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf),
                 env=env)
        say(f"triggered {dag_id} run {run_id}")
        state = "queued"
        while state not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {state}; see {log_path}")
            if process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited; see {log_path}")
            time.sleep(3)
            runs = _json_rows(_airflow("dags", "list-runs", dag_id, "-o", "json", env=env,
                                       check=False))
            state = next((r["state"] for r in runs if r.get("run_id") == run_id), state)
        tasks = _json_rows(_airflow("tasks", "states-for-dag-run", dag_id, run_id, "-o", "json",
                                    env=env, check=False))
        return {"dag_id": dag_id, "run_id": run_id, "state": state,
                "tasks": [{k: t.get(k) for k in ("task_id", "map_index", "state", "try_number")}
                          for t in tasks]}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag_id")
    parser.add_argument("--conf", default="{}", help="run configuration (JSON)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_once(args.dag_id, json.loads(args.conf), args.timeout,
                      say=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['dag_id']} {result['run_id']}: {result['state']}")
        for task in result["tasks"]:
            index = "" if task["map_index"] in (None, -1, "-1") else f"[{task['map_index']}]"
            print(f"  {task['task_id']}{index:<6} {task['state']:<10} try {task['try_number']}")
    return 0 if result["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
