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
    """Where this run's version goes and what it learns from: a dataset's judged queries,
    a click export (written into the version directory first, so a retry trains on the same
    clicks), or the traffic of ``events`` (bias-corrected clicks; the dataset optional)."""
    from ragrec.config import cache_dir

    events = params.get("events") or None
    dataset = Path(params["dataset"]).expanduser() if params.get("dataset") else None
    if dataset is None and events is None:
        _bad_input("nothing to learn from: give a dataset (judged queries) or events (the "
                   "alias whose traffic to learn from)")
    if dataset is not None and not (dataset / "corpus.jsonl").is_file():
        _bad_input(f"{dataset} is not a BEIR dataset (no corpus.jsonl): the corpus and "
                   "queries to train on")
    name = params.get("name") or "ragrec-minilm"
    root = Path(params.get("out_root") or cache_dir() / "models").expanduser()
    out = root / name / re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-")
    out.mkdir(parents=True, exist_ok=True)
    clicks = None
    if params.get("clicks_from"):
        from ragrec.recs.events import export_training_pairs

        clicks = out / "clicks.jsonl"
        if not clicks.is_file():
            count = export_training_pairs(runtime.es_client(), params["clicks_from"], clicks)
            log.info("exported %d labelled pairs from %s's events", count,
                     params["clicks_from"])
    return {"out": str(out), "dataset": str(dataset) if dataset else None,
            "clicks": str(clicks) if clicks else None, "events": events,
            "base": params.get("base") or "base", "name": name,
            "index": params.get("index") or events or "ragrec-train-corpus",
            "max_minutes": params.get("max_minutes"), "max_steps": params.get("max_steps"),
            "eval_split": params.get("eval_split") or "test"}


def train(kind: str, planned: dict) -> dict:
    """One training job (``kind``: embedder or reranker) into the run's version directory."""
    from ragrec.models.train_job import TrainingDataError, TrainJob, run
    from ragrec.models.train_settings import NEGATIVES, settings_for
    from ragrec.models.trainers import TrainingBudgetSpent

    settings = settings_for(kind, max_steps=planned["max_steps"] or None,
                            max_minutes=planned["max_minutes"] or None)
    job = TrainJob(kind=kind, base=planned["base"], out=Path(planned["out"]),
                   dataset=Path(planned["dataset"]) if planned["dataset"] else None,
                   index=planned["index"], events=planned.get("events"),
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
    """``ragrec eval`` of the version on ``eval_split``, every mode, where a dataset was
    given; on the held-out traffic of ``events`` (counterfactual nDCG@10, beside the live
    version's on the same queries) where events were. The figures go onto the version's
    card (the registry keeps them beside the training figures)."""
    from ragrec.models.store import CARD

    out = Path(planned["out"])
    card = json.loads((out / CARD).read_text())
    evaluation: dict = {}
    if planned["dataset"]:
        from ragrec.eval import runner
        from ragrec.eval.datasets import BeirDataset

        report = runner.evaluate_model(
            runtime.es_client(), BeirDataset(Path(planned["dataset"])),
            f"{planned['index']}-candidate", str(out),
            settings=runner.EvalSettings(split=planned["eval_split"]), show_progress=False)
        evaluation = {"split": report["split"], "metrics": report["metrics"],
                      "tuned": report["tuned"], "index": report["index"]}
        for mode, metrics in report["metrics"].items():
            log.info("%-15s nDCG@10 %.4f  R@100 %.4f", mode, metrics["ndcg@10"],
                     metrics["recall@100"])
    if planned.get("events"):
        evaluation["traffic"] = traffic_figures(planned["events"], str(out))
    card["evaluation"] = evaluation
    (out / CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
    return {"version": card["version"], "metrics": evaluation.get("metrics"),
            "traffic": evaluation.get("traffic")}


def traffic_figures(alias: str, model_uri: str, margin: float = 0.02) -> dict:
    """The candidate and the live version on ``alias``'s held-out traffic (the served spec
    and the dense ranking; the candidate ranks the live index with its own query encoder,
    which is why only a version sharing the live document vectors is scored here), the
    paired gains, and whether the label-free gate's rule (``counterfactual.verdict``) would
    pass it."""
    from ragrec.eval.counterfactual import verdict
    from ragrec.eval.traffic import evaluate_traffic
    from ragrec.indexing.versions import index_meta

    client = runtime.es_client()
    live_version = index_meta(client, alias).get("model_version")
    figures, per_query = {}, {}
    for name, uri in (("candidate", model_uri), ("live", _version_uri(live_version))):
        report = evaluate_traffic(client, alias, alias, uri, modes=("served", "dense"))
        figures[name] = {"version": report["model_version"], **report["metrics"]["served"]}
        per_query[name] = report["per_query"]
    decided = verdict(per_query["candidate"], per_query["live"], margin)
    gain = decided["gains"]["served"]
    log.info("held-out traffic of %s (counterfactual nDCG@10, served spec): candidate %.4f, "
             "live %.4f, gain %+.4f %s; dense %+.4f; the label-free gate would %s", alias,
             figures["candidate"]["ndcg@10"], figures["live"]["ndcg@10"], gain["gain"],
             gain["ci95"], decided["gains"]["dense"]["gain"],
             "pass it" if decided["passed"] else "refuse it")
    return {**figures, "gain": gain, "gains": decided["gains"], "passes": decided["passed"]}


def _version_uri(version: str) -> str:
    """A model URI for a version string: the base model's, or the registry's entry."""
    from ragrec.airflow.rollout_steps import registry
    from ragrec.embedding.in_process import base_model_dir, model_version_of

    if version == model_version_of(base_model_dir()):
        return "base"
    uri = registry().find_version(version)
    if uri is None:
        _bad_input(f"the live model version {version} is not in the registry: it cannot be "
                   "scored beside the candidate")
    return uri


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
