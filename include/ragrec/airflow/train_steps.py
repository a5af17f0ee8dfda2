"""model_train's task bodies: the same jobs as ``ragrec train embedder``, ``ragrec train
reranker`` and ``ragrec eval`` (``models.train_job``, ``eval.runner``), into one model version
directory that is then registered as ``candidate``.

The version directory is ``<out_root>/<name>/<run id>`` (``out_root``: the form's, else
``<cache>/models``); every task of a run reads and writes it, so with workers on several
machines it must be on storage they share. Bad training data fails the run at once (no
retry can fix it), with the one-line reason the CLI prints.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ragrec.airflow import runtime

log = logging.getLogger(__name__)


def plan(params: dict, run_id: str) -> dict:
    """Where this run's version goes and what it learns from (a click export is written
    into the version directory first, so a retry trains on the same clicks)."""
    from ragrec.config import cache_dir

    dataset = Path(params["dataset"]).expanduser()
    if not (dataset / "corpus.jsonl").is_file():
        _bad_input(f"{dataset} is not a BEIR dataset (no corpus.jsonl): the corpus and "
                   "queries to train on")
    name = params.get("name") or "ragrec-minilm"
    root = Path(params.get("out_root") or cache_dir() / "models").expanduser()
    out = root / name / re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-")
    out.mkdir(parents=True, exist_ok=True)
    clicks = None
    if params.get("clicks_from"):
        from ragrec.api.events import export_training_pairs

        clicks = out / "clicks.jsonl"
        if not clicks.is_file():
            count = export_training_pairs(runtime.es_client(), params["clicks_from"], clicks)
            log.info("exported %d labelled pairs from %s's events", count,
                     params["clicks_from"])
    return {"out": str(out), "dataset": str(dataset), "clicks": str(clicks) if clicks else None,
            "base": params.get("base") or "base", "name": name,
            "index": params.get("index") or "ragrec-train-corpus",
            "max_minutes": params.get("max_minutes"), "max_steps": params.get("max_steps"),
            "eval_split": params.get("eval_split") or "test"}


def train(kind: str, planned: dict) -> dict:
    """One training job (``kind``: embedder or reranker) into the run's version directory."""
    from ragrec.models.train_job import TrainingDataError, TrainJob, run
    from ragrec.models.train_settings import NEGATIVES, settings_for
    from ragrec.models.trainers import TrainingBudgetSpent

    settings = settings_for(kind, max_steps=planned["max_steps"] or None,
                            max_minutes=planned["max_minutes"] or None)
    job = TrainJob(kind=kind, dataset=Path(planned["dataset"]), base=planned["base"],
                   out=Path(planned["out"]), index=planned["index"],
                   clicks=Path(planned["clicks"]) if planned["clicks"] else None,
                   negatives=NEGATIVES[kind], eval_split=None, name=planned["name"],
                   settings=settings)
    try:
        card = run(job, runtime.es_client())
    except (TrainingDataError, TrainingBudgetSpent) as exc:
        _bad_input(str(exc))
    result = card["training"][kind]["result"]
    log.info("%s: %s steps (%s), sample %s, %.0f s", kind, result["steps"],
             result["budget"]["stopped_by"], result["sample"], card["seconds"])
    return {"version": card["version"], "kind": kind, "seconds": card["seconds"],
            "steps": result["steps"], "budget": result["budget"], "sample": result["sample"]}


def evaluate(planned: dict) -> dict:
    """``ragrec eval`` of the version on ``eval_split``, every mode; the report goes onto the
    version's card (the registry keeps it beside the training figures)."""
    from ragrec.eval import runner
    from ragrec.eval.datasets import BeirDataset
    from ragrec.models.store import CARD

    out = Path(planned["out"])
    report = runner.evaluate_model(
        runtime.es_client(), BeirDataset(Path(planned["dataset"])),
        f"{planned['index']}-candidate", str(out),
        settings=runner.EvalSettings(split=planned["eval_split"]), show_progress=False)
    card = json.loads((out / CARD).read_text())
    card["evaluation"] = {"split": report["split"], "metrics": report["metrics"],
                          "tuned": report["tuned"], "index": report["index"]}
    (out / CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
    for mode, metrics in report["metrics"].items():
        log.info("%-15s nDCG@10 %.4f  R@100 %.4f", mode, metrics["ndcg@10"],
                 metrics["recall@100"])
    return {"version": report["model_version"], "metrics": report["metrics"]}


def register(planned: dict) -> dict:
    """The version in the registry as ``candidate`` (a re-run finds it registered)."""
    from ragrec.airflow.rollout_steps import registry
    from ragrec.models.store import read_layout

    version = read_layout(Path(planned["out"])).version
    reg = registry()
    uri = reg.find_version(version)
    if uri is None:
        uri = reg.register(Path(planned["out"]).as_uri(), stage="candidate")["uri"]
    log.info("registered %s as candidate: %s; roll it out with model_rollout "
             "(model_uri registry:%s:%s)", version, uri, planned["name"], version)
    return {"name": planned["name"], "version": version, "uri": uri}


def _bad_input(message: str):
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message)
