"""Runs DAGs under a real Airflow 3 deployment on this machine (``local_airflow``): ``airflow
standalone`` with the LocalExecutor, or (``--executor celery``) the CeleryExecutor with a
Redis broker and ``--workers`` Celery workers - on the SQLite metadata DB of
``AIRFLOW_HOME`` - then prints the task states of each run, with the worker that ran each try.

    python -m ragrec.dev.scheduler_run kb_ingest --conf '{"all_documents": true}'
    python -m ragrec.dev.scheduler_run kb_ingest --executor celery --workers 2 --conf '{...}'
    python -m ragrec.dev.scheduler_run kb_ingest model_rollout --conf '{...}' --conf '{...}'
    python -m ragrec.dev.scheduler_run kb_ingest --backfill 2026-03-01T00:00 2026-03-01T01:00

It creates the ``model_endpoint`` pool, unpauses the DAGs, triggers them from the CLI one
after the other (with ``--backfill``, the first DAG named gets an ``airflow backfill`` over
those dates instead of a trigger), waits for each to finish and stops Airflow again.
``--report DAG`` adds every run of DAG (say, one a rollout triggered).
The exit status is 0 only when every run it started succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ragrec.dev.local_airflow import EXECUTORS, LocalAirflow


def run_dags(dag_ids: list[str], confs: list[dict], timeout: float = 900.0,
             backfill: tuple[str, str] | None = None, report: tuple[str, ...] = (),
             log_path: Path | None = None, say=print, executor: str = "local",
             workers: int = 2) -> list[dict]:
    """Runs each DAG in turn - the first one backfilled over ``backfill`` when given, the
    others triggered - and returns every run's outcome; runs of the ``report`` DAGs follow,
    whoever started them."""
    confs = list(confs) + [{}] * (len(dag_ids) - len(confs))
    outcomes = []
    with LocalAirflow(timeout, log_path, say, executor=executor, workers=workers) as airflow:
        airflow.wait_parsed(*dict.fromkeys([*dag_ids, *report]))  # each unpaused once
        for position, (dag_id, conf) in enumerate(zip(dag_ids, confs, strict=True)):
            run_ids = (airflow.backfill(dag_id, *backfill, conf) if backfill and position == 0
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
        where = " -> ".join(f"{t['hostname'] or '?'} ({t['state']})"
                            for t in task.get("tries", []))
        lines.append(f"  {name:<24} {str(task['state']):<16} {took:>8}  {where}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dag_ids", nargs="+", metavar="DAG")
    parser.add_argument("--conf", action="append", default=[],
                        help="run configuration (JSON), one per DAG in order")
    parser.add_argument("--backfill", nargs=2, metavar=("FROM", "TO"),
                        help="backfill the first DAG over these logical dates (the others are "
                             "triggered)")
    parser.add_argument("--report", action="append", default=[], metavar="DAG",
                        help="also print the runs of DAG (e.g. one a rollout triggers)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: airflow standalone; celery: Redis and Celery workers")
    parser.add_argument("--workers", type=int, default=2,
                        help="Celery workers (with --executor celery)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if len(args.conf) > len(args.dag_ids):
        parser.error("more --conf than DAGs")
    outcomes = run_dags(args.dag_ids, [json.loads(c) for c in args.conf], args.timeout,
                        tuple(args.backfill) if args.backfill else None, tuple(args.report),
                        say=lambda m: print(m, file=sys.stderr, flush=True),
                        executor=args.executor, workers=args.workers)
    if args.json:
        print(json.dumps(outcomes))
    else:
        print("\n".join(format_outcome(o) for o in outcomes))
    started = [o for o in outcomes if not o.get("reported")]
    return 0 if started and all(o["state"] == "success" for o in started) else 1


if __name__ == "__main__":
    sys.exit(main())
