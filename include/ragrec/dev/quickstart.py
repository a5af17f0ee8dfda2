"""The embedded-default demo: the sample documents shipped with ragrec go through the
``kb_ingest`` DAG (Airflow ``dag.test()``: plan, parse, chunk, embed in process, validate,
bulk-index) into Elasticsearch, then a few questions are answered with hybrid search.

The demo's ``AIRFLOW_HOME`` is left as a user finds Airflow: its DAGs serialised (Airflow 3
lists no DAG until the DAG processor or ``airflow dags reserialize`` has parsed it), so
``airflow dags list`` shows them; ``start_ui`` runs the Airflow UI over it (``airflow
standalone`` on 127.0.0.1, no login: a local demo) until ``stop_ui``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ragrec.retrieval import Hit
from ragrec.sources.samples import samples_dir

DEMO_QUERIES = (
    "how do I get reimbursed for a hotel",
    "the VPN keeps disconnecting at the airport",
    "my laptop was stolen, what should I do",
)
DEMO_QUERIES_ZH = (  # over the Chinese samples (``ragrec demo --language zh``)
    "出差住酒店的费用怎么报销？",
    "在机场连不上公司的VPN怎么办？",
    "笔记本电脑被偷了应该怎么做？",
)


def format_hits(query: str, hits: list[Hit]) -> str:
    lines = [f"Query: {query}"]
    if not hits:
        lines.append("  (no hits)")
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.title} ({hit.doc_id})" if hit.title else hit.doc_id
        lines.append(f"  {rank}. {hit.score:.4f}  {where}")
        lines.append(f"        {' '.join(hit.text.split())[:160]}")
    return "\n".join(lines)


class DemoError(RuntimeError):
    pass


def run_kb_ingest(index: str, log_path: Path, source: Path | None = None,
                  language: str = "") -> dict:
    """``kb_ingest`` over the samples (or ``source``) with ``dag.test()`` in a child process
    (Airflow's output goes to ``log_path``; ``language``: the DAG's index language param);
    returns the run's outcome, raises DemoError."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    outcome_path = log_path.with_suffix(".json")
    outcome_path.unlink(missing_ok=True)
    env = os.environ.copy()
    with open(log_path, "w") as log:
        step = subprocess.run([sys.executable, "-m", "ragrec.dev.demo_run", "--index", index,
                               "--source", (source or samples_dir()).as_uri(),
                               "--out", str(outcome_path), "--language", language],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    if step.returncode != 0 and not outcome_path.is_file():
        raise DemoError(f"kb_ingest did not run (Airflow's metadata DB or DAGs); see {log_path}")
    outcome = json.loads(outcome_path.read_text())
    if outcome.get("state") != "success":
        raise DemoError(f"kb_ingest ended {outcome.get('state')}: {outcome.get('tasks')}; "
                        f"see {log_path}")
    if not (outcome.get("published") or {}).get("documents"):
        raise DemoError(f"kb_ingest succeeded but the index holds no documents "
                        f"(source {(source or samples_dir())}); see {log_path}")
    return outcome


def _ui_files() -> tuple[Path, Path]:
    from ragrec.config import cache_dir

    folder = cache_dir() / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "airflow-ui.json", folder / "airflow-ui.log"


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def start_ui(timeout: float = 300.0) -> str:
    """Starts ``airflow standalone`` over the demo's ``AIRFLOW_HOME`` in the background (or
    finds it running) and returns the UI's URL once its API answers."""
    import signal
    import time

    from ragrec.dev.es_node.node import free_port

    state_file, log_path = _ui_files()
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if _answers(state["url"]):
            return state["url"]
        stop_ui()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ.copy()
    env.update({"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__BASE_URL": url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    state_file.write_text(json.dumps({"pid": process.pid, "url": url}))
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            state_file.unlink(missing_ok=True)
            raise DemoError(f"the Airflow UI did not come up; see {log_path}")
        time.sleep(1)
    return url


def stop_ui() -> bool:
    """Stops the UI ``start_ui`` started, every process of it; False when none was
    running."""
    state_file, _ = _ui_files()
    if not state_file.is_file():
        return False
    from ragrec.dev.local_airflow import stop_process_tree

    pid = json.loads(state_file.read_text())["pid"]
    state_file.unlink()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stop_process_tree(pid)
    return True
