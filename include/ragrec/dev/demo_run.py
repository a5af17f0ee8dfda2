"""Runs ``kb_ingest`` once with ``dag.test()`` (the README's main job) and writes the run's
outcome as JSON: ``python -m ragrec.dev.demo_run --index I --source URI --out F``.
First, in the same process (each ``airflow`` command is seconds of start-up on 2 cores), it
does what ``airflow db migrate`` and ``airflow dags reserialize`` do - the latter so that
``airflow dags list`` and the UI show the DAGs (Airflow 3 lists none until they are
serialised). Airflow's own output goes to this process's stdout/stderr (the caller logs it to
a file)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ragrec.config import airflow_dags_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--language", default="")
    args = parser.parse_args(argv)

    from airflow.cli import cli_parser
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    airflow_cli = cli_parser.get_parser()
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        parsed = airflow_cli.parse_args(command)
        parsed.func(parsed)

    folder = airflow_dags_folder() or Path(__file__).resolve().parents[3] / "dags"
    bag = DagBag(dag_folder=str(folder))
    if bag.import_errors or "kb_ingest" not in bag.dags:
        Path(args.out).write_text(json.dumps({"state": "failed",
                                              "error": str(bag.import_errors)[:2000]}))
        return 1
    dag = bag.dags["kb_ingest"]
    run = dag.test(run_conf={"source": args.source, "index": args.index,
                             "all_documents": True, "language": args.language})
    tasks: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        tasks.setdefault(ti.task_id, []).append(str(ti.state))
    with create_session() as session:
        row = session.query(XComModel).filter_by(
            dag_id=run.dag_id, run_id=run.run_id, task_id="validate_and_publish",
            key="return_value").first()
        published = XComModel.deserialize_value(row) if row is not None else None
    outcome = {"state": str(run.state), "run_id": run.run_id, "tasks": tasks,
               "published": published}
    Path(args.out).write_text(json.dumps(outcome, default=str))
    return 0 if outcome["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
