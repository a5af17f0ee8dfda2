"""The embedded-default demo: the sample documents shipped with ragrec go through the
``kb_ingest`` DAG (Airflow ``dag.test()``: plan, parse, chunk, embed in process, validate,
bulk-index) into Elasticsearch, then a few questions are answered with hybrid search."""

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


def run_kb_ingest(index: str, log_path: Path, source: Path | None = None) -> dict:
    """``kb_ingest`` over the samples (or ``source``) with ``dag.test()`` in a child process
    (Airflow's output goes to ``log_path``); returns the run's outcome, raises DemoError."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    outcome_path = log_path.with_suffix(".json")
    outcome_path.unlink(missing_ok=True)
    env = os.environ.copy()
    with open(log_path, "w") as log:
        for command in (["airflow", "db", "migrate"],
                        ["ragrec.dev.demo_run", "--index", index, "--source",
                         (source or samples_dir()).as_uri(), "--out", str(outcome_path)]):
            step = subprocess.run([sys.executable, "-m", *command], stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
            if step.returncode != 0 and not outcome_path.is_file():
                raise DemoError(f"{' '.join(command[:3])} failed; see {log_path}")
    outcome = json.loads(outcome_path.read_text())
    if outcome.get("state") != "success":
        raise DemoError(f"kb_ingest ended {outcome.get('state')}: {outcome.get('tasks')}; "
                        f"see {log_path}")
    if not (outcome.get("published") or {}).get("documents"):
        raise DemoError(f"kb_ingest succeeded but the index holds no documents "
                        f"(source {(source or samples_dir())}); see {log_path}")
    return outcome
