"""``ragrec train embedder|reranker``: data -> the base version's index of the corpus ->
fine-tune -> before/after metrics -> a model version directory with a card (lineage).

* ``embedder`` trains the query side: a query encoder against the document vectors the
  index holds (every chunk a negative, nothing to mine), saved as ``query_encoder/``; the
  documents keep the base version's encoder (``embedder/``, copied).
* ``reranker`` trains the cross-encoder on hard negatives mined from the index (BM25 and
  dense), saved as ``reranker/``.

What they learn from: a BEIR folder's judged train queries (``dataset``), or the
deployment's own traffic (``events``: the alias whose ``<alias>-events`` holds impressions and
clicks; ``feedback.labels``): clicks weighted by their bias-corrected relevance estimate,
results skipped above a click as the reranker's first negatives, and the queries first seen
last held out - in place of judged held-out queries - to pick the epoch on. With events the
documents are the index's own; a ``dataset`` given beside them adds judged before/after
figures.

Both kinds can be written into the same version directory (``--out``);
``ragrec-model.json`` records both.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ragrec.embedding.onnx_weights import trainable_dir
from ragrec.eval.datasets import BeirDataset, tuning_sample
from ragrec.eval.metrics import score_run
from ragrec.models.store import CARD, base_encoder_of, copy_model, read_layout
from ragrec.models.train_settings import TrainSettings
from ragrec.models.trainers import train_query_encoder, train_reranker
from ragrec.models.training_data import (
    IndexedCorpus,
    TrainingSet,
    document_text,
    from_beir,
    from_click_labels,
    from_clicks,
    held_out_click_qrels,
    index_documents,
)
from ragrec.models.uris import load_layout

FOLDERS = {"embedder": "query_encoder", "reranker": "reranker"}  # in the version directory
MIN_TRAIN_QUERIES = 5  # fewer judged queries than this is no training set
MINE_SHARE = 1 / 3  # of the budget, at most, for mining hard negatives (a large train split)


class TrainingDataError(ValueError):
    """The data cannot train a model (too few queries, no pairs): one line, what to do."""


@dataclass(frozen=True)
class TrainJob:
    kind: str  # "embedder" | "reranker"
    dataset: Path | None
    base: str
    out: Path
    index: str
    split: str = "train"
    clicks: Path | None = None
    events: str | None = None  # alias whose <alias>-events the pairs come from
    correction: str = "ipw"  # events: "ipw" (position-bias corrected) or "none" (naive)
    rationales: Path | None = None  # reranker: also learn (claim, evidence sentence) pairs
    negatives: int = 1
    holdout: int = 150  # train queries kept out for ``ragrec eval``'s weight tuning
    eval_split: str | None = "test"
    name: str | None = None
    settings: TrainSettings = TrainSettings()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rerank_ndcg(client, alias: str, scorer, dataset: BeirDataset, split: str,
                top: int = 20, queries_limit: int = 100) -> dict:
    """BM25 top-``top`` documents for the first ``queries_limit`` judged queries, before
    (BM25 order) and after reranking."""
    from ragrec import retrieval

    queries, qrels = dataset.queries(), dataset.qrels(split)
    ids = sorted(qrels)[:queries_limit]
    documents = {d["_id"]: document_text(d) for d in dataset.corpus()}
    before, after = {}, {}
    for qid in ids:
        hits = retrieval.bm25(client, alias, queries[qid], top * 3)
        order = list(dict.fromkeys(h.doc_id.removesuffix(".md") for h in hits))[:top]
        before[qid] = order
        if scorer is not None and order:
            scores = scorer.score(queries[qid], [documents[d] for d in order])
            after[qid] = [order[i] for i in np.argsort(-scores, kind="stable")]
    judged = {q: qrels[q] for q in ids}
    result = {"bm25_top": top, "queries": len(ids),
              "ndcg@10_bm25": round(score_run(before, judged)["ndcg@10"], 4)}
    if after:
        result["ndcg@10_reranked"] = round(score_run(after, judged)["ndcg@10"], 4)
    return result


def _held_out(dataset: BeirDataset, job: TrainJob) -> list[str]:
    """The train queries the tuning sample holds out (``tuning_size``'s cap applied)."""
    if job.split != "train" or not job.holdout:
        return []
    return tuning_sample(dataset.qrels(job.split), job.holdout)


def _held_out_queries(dataset: BeirDataset, job: TrainJob, held: list[str]) -> tuple | None:
    """(id -> text, qrels) of the ``held`` train queries, that the query encoder picks its
    epoch on; None when none is held out."""
    if not held:
        return None
    qrels, queries = dataset.qrels(job.split), dataset.queries()
    ids = [q for q in held if q in queries]
    return {q: queries[q] for q in ids}, {q: qrels[q] for q in ids}


def _check_trainable(training: TrainingSet, job: TrainJob, held_out: int,
                     also: set[str] = frozenset()) -> None:
    queries = len({e.query for e in training.examples} | also)
    if queries >= MIN_TRAIN_QUERIES:
        return
    where = f"--clicks {job.clicks}" if job.clicks else \
        f"the clicks of --events {job.events}" if job.events else \
        f"{job.dataset}/qrels/{job.split}.tsv"
    held = f" after {held_out} held out for tuning" if held_out else ""
    if job.events:
        raise TrainingDataError(
            f"{queries} queries with clicks"
            f"{' or chat feedback' if job.kind == 'reranker' else ''} to train on in "
            f"{where}{held}; training needs at least {MIN_TRAIN_QUERIES}: let "
            f"more traffic in (impressions and clicks with their trace_id and position, POST "
            f"/events), or train on judged queries (--dataset)")
    raise TrainingDataError(
        f"{queries} judged queries to train on in {where}{held}; training needs at least "
        f"{MIN_TRAIN_QUERIES}: judge more queries (or log clicks), or train on another split "
        f"(--split)")


def run(job: TrainJob, client=None) -> dict:
    """``client``: the Elasticsearch client (default: ``connect()``, from the environment)."""
    from ragrec.config import cache_dir
    from ragrec.embedding import encoder_for
    from ragrec.es_client import connect
    from ragrec.eval.runner import ensure_index
    from ragrec.models.training_data import mine_hard_negatives

    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str, since: float) -> float:
        now = time.monotonic()
        phases[name] = round(now - since, 1)
        return now

    if job.dataset is None and job.events is None:
        raise TrainingDataError("nothing to learn from: give --dataset (judged queries) or "
                                "--events ALIAS (the deployment's clicks)")
    dataset = BeirDataset(job.dataset) if job.dataset is not None else None
    base = load_layout(job.base)
    labels, traffic, chat = None, None, None
    if job.events:
        client = client or connect()
        labels = _click_labels(client, job)
        documents = None
        if job.kind == "reranker":
            documents = {d["_id"]: document_text(d) for d in dataset.corpus()} \
                if dataset is not None else index_documents(client, job.index)
        training = from_click_labels(labels, documents)
        traffic = held_out_click_qrels(labels)
        held: list[str] = []
        held_out = len(labels.held_out)
        if job.kind == "reranker":
            chat = _chat_labels(client, job, labels)
    else:
        held = _held_out(dataset, job)
        held_out = len(held)
        training = from_beir(dataset, job.split, holdout=held_out)
        if job.clicks:
            clicks = from_clicks(job.clicks, training.documents)
            training = TrainingSet(clicks.examples, training.documents, clicks.source)
    # Judged data is checked before Elasticsearch is reached.
    _check_trainable(training, job, held_out, set() if chat is None else
                     {q.text for q in chat.training(labels.held_out).values()})
    client = client or connect()
    _say(f"{len(training.examples)} training pairs ({len({e.query for e in training.examples})}"
         f" queries) from {training.source}; budget: "
         + ", ".join(filter(None, [f"{job.settings.max_minutes:g} min"
                                   if job.settings.max_minutes else "no time limit",
                                   f"{job.settings.max_steps} steps"
                                   if job.settings.max_steps else ""])))

    miner = encoder_for(base.embedder_dir)
    if dataset is not None:
        ensure_index(client, job.index, dataset, miner, base.embedder_dir, cache_dir(),
                     show_progress=False)
    else:
        _check_index_encoder(client, job.index, base)
    mark = phase("index", started)
    metrics: dict = {}
    corpus = None
    if job.kind == "embedder":
        # The query encoder learns against the vectors the base version's index holds.
        corpus = IndexedCorpus.from_index(client, job.index,
                                          keep={e.positive for e in training.examples},
                                          seed=job.settings.seed)
        queries = miner if base.query_encoder_dir is None else encoder_for(base.query_dir)
        if job.eval_split and dataset is not None:
            metrics["before"] = corpus.dense_ndcg(queries, dataset, job.eval_split)
        if traffic is not None:
            metrics["traffic_before"] = corpus.ndcg_of(queries, *traffic)
        mark = phase("read_vectors", mark)
    # The budget starts here: the index is the corpus's, not the run's (eval and search use
    # it too), a new corpus takes as long as it takes, and evaluation is extra.
    budget_seconds = (job.settings.max_minutes or 0) * 60
    deadline = mark + budget_seconds if budget_seconds else None
    if job.kind == "embedder":
        mined = None  # every indexed chunk is a negative: nothing to mine
    else:
        mined = mine_hard_negatives(client, job.index, miner, training,
                                    per_query=job.negatives, seed=job.settings.seed,
                                    deadline=mark + budget_seconds * MINE_SHARE
                                    if budget_seconds else None)
        _say(f"mined hard negatives from {job.index} (BM25 + dense, {job.negatives} per "
             f"pair) for {mined['queries']} of {mined['of_queries']} queries"
             + ("" if mined["stopped_by"] == "data" else
                f" (the budget's {MINE_SHARE:.0%} for mining ran out: the rest are left out)"))
    if job.rationales is not None:
        if job.kind != "reranker":
            raise ValueError("--rationales teaches the cross-encoder: train reranker")
        from ragrec.models.training_data import add_rationales

        added = add_rationales(training, job.rationales, job.split, held)
        _say(f"{added} (claim, evidence sentence) examples from {job.rationales}")
    if chat is not None:
        from ragrec.models.training_data import add_chat_feedback

        added = add_chat_feedback(training, chat, labels.held_out, seed=job.settings.seed)
        _say(f"{added} (question, helpful sentence) examples from the chat's feedback")
    if mined is not None or job.rationales is not None or chat is not None:
        mark = phase("mine", mark)

    job.out.mkdir(parents=True, exist_ok=True)
    staging = job.out / f".{job.kind}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    if job.kind == "embedder":
        result = train_query_encoder(trainable_dir(base.query_dir), training, corpus, staging,
                                     job.settings, deadline, traffic if labels is not None
                                     else _held_out_queries(dataset, job, held),
                                     clicks=labels is not None)
        mark = phase("train", mark)
        if job.eval_split and dataset is not None:
            metrics["after"] = corpus.dense_ndcg(encoder_for(staging), dataset,
                                                 job.eval_split)
        if traffic is not None:
            metrics["traffic_after"] = corpus.ndcg_of(encoder_for(staging), *traffic)
        mark = phase("eval_after", mark)
    else:
        from ragrec.models.reranker import init_cross_encoder, load_cross_encoder

        if base.reranker_dir is not None:
            init = base.reranker_dir
        else:
            init = init_cross_encoder(trainable_dir(base.embedder_dir),
                                      job.out / ".reranker-init",
                                      seed=job.settings.seed)
        result = train_reranker(init, training, staging, job.settings, deadline)
        shutil.rmtree(job.out / ".reranker-init", ignore_errors=True)
        mark = phase("train", mark)
        if job.eval_split and dataset is not None:
            metrics = rerank_ndcg(client, job.index, load_cross_encoder(staging), dataset,
                                  job.eval_split)
            mark = phase("eval_after", mark)
        if chat is not None:
            metrics["chat_held_out"] = _chat_held_out(chat, labels, miner,
                                                      load_cross_encoder(staging))
    target = job.out / FOLDERS[job.kind]
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    metrics["eval_split"] = job.eval_split
    result = {**result, "phases_seconds": phases}
    if mined is not None:
        result["mined"] = mined
    if labels is not None:
        result["events"] = labels.report()
    if chat is not None:
        result["events"]["chat"] = chat.report()
    card = _update_card(job, base, training, result, metrics, held_out)
    (job.out / "metrics.json").write_text(json.dumps(card["training"], indent=2))
    card["seconds"] = round(time.monotonic() - started, 1)
    return card


def _click_labels(client, job: TrainJob):
    """The labels of ``job.events``'s traffic (the queries first seen last, ``holdout`` of
    them at most, held out), with what was read and dropped on stderr."""
    from ragrec.feedback import labels, sessions

    log = sessions.read_sessions(client, sessions.events_index(job.events))
    built = labels.build(log, job.holdout, job.correction)
    report = built.report()
    propensities = built.propensities
    _say(f"{sessions.events_index(job.events)}: {log.counts.get('sessions_read', 0)} sessions "
         f"read, {log.counts.get('sessions_kept', 0)} kept ({_dropped(log.counts)}); "
         f"{report['train_queries']} queries to train on, {report['held_out_queries']} held "
         f"out (first seen last); examination by position "
         f"{' '.join(f'{p:.2f}' for p in propensities.by_position)}"
         + ("" if propensities.identified else
            f" (NOT identified: {propensities.evidence} impressions of results seen at two "
            f"positions; turn on RAGREC_EXPLORE)"))
    if job.correction == "ipw" and not propensities.identified:
        _say("warning: too little exploration traffic to measure position bias: the clicks "
             "are read as they are (no correction); let more traffic through "
             "RAGREC_EXPLORE first")
    return built


def _chat_labels(client, job: TrainJob, labels):
    """The chat's sentence labels of ``job.events`` (``feedback.chat``), with what was read
    and dropped on stderr."""
    from ragrec.feedback import chat

    built = chat.read_chat_labels(client, job.events)
    report = built.report()
    counts = report["events"]
    dropped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()
                        if k != "feedback_read" and v)
    _say(f"chat feedback of {job.events}: {counts.get('feedback_read', 0)} votes on stored "
         f"turns, {report['questions']} questions, {report['positive_sentences']} helpful and "
         f"{report['negative_sentences']} unhelpful sentences"
         + (f" ({dropped})" if dropped else ""))
    return built


def _chat_held_out(chat, labels, encoder, cross_encoder) -> dict | None:
    """The cosine selector and the trained cross-encoder on the held-out traffic's chat
    votes (``eval.chat_votes``), said on stderr; None when none were held out."""
    from ragrec.eval.chat_votes import cosine_scorer, held_out_questions, pairwise_accuracy

    questions = held_out_questions(chat, labels.held_out)
    if not questions:
        return None
    figures = {"cosine": pairwise_accuracy(cosine_scorer(encoder), questions),
               "cross_encoder": pairwise_accuracy(cross_encoder.score, questions)}
    _say(f"sentence selection on {len(questions)} held-out chat questions (pairwise "
         f"accuracy, helpful above voted down; 0.5 chance): cosine "
         f"{figures['cosine']['accuracy']}, the trained cross-encoder "
         f"{figures['cross_encoder']['accuracy']} ({figures['cosine']['pairs']} pairs)")
    return figures


def _dropped(counts: dict) -> str:
    names = ("junk_query_sessions_dropped", "bot_sessions_dropped", "repeat_sessions_capped",
             "clicks_capped")
    return ", ".join(f"{counts.get(n, 0)} {n.replace('_', ' ')}" for n in names)


def _check_index_encoder(client, alias: str, base) -> None:
    """Without a dataset the corpus is ``alias`` as it stands: its vectors must be the base
    version's documents."""
    from ragrec.embedding.in_process import document_version_of
    from ragrec.indexing.versions import document_version_held, index_meta

    if not client.indices.exists(index=alias):
        raise TrainingDataError(f"index {alias} does not exist: give --index the alias the "
                                f"events' documents are in, or --dataset to build one")
    held = document_version_held(index_meta(client, alias))
    wanted = document_version_of(base.embedder_dir)
    if held != wanted:
        raise TrainingDataError(f"index {alias} holds document vectors of {held!r}; --base "
                                f"{base.version} encodes documents as {wanted!r}: train from "
                                f"the version that built the index")


def _update_card(job: TrainJob, base, training: TrainingSet, result: dict, metrics: dict,
                 held_out: int):
    from ragrec.embedding.in_process import document_version_of

    path = job.out / CARD
    card = json.loads(path.read_text()) if path.is_file() else {}
    digest = training.digest()
    name = job.name or card.get("name") or "ragrec-minilm"
    if "version" not in card:
        card["version"] = f"{name}-{datetime.now(UTC):%Y%m%d%H%M}-{digest[:8]}"
    card.update({"name": name, "embedder": card.get("embedder"), "created_at":
                 datetime.now(UTC).isoformat(timespec="seconds"),
                 "base_encoder": base_encoder_of(base)})
    if job.kind == "embedder":
        card["query_encoder"] = FOLDERS["embedder"]
    else:
        card["reranker"] = FOLDERS["reranker"]
    if not card.get("embedder"):
        # Documents keep the base version's encoder (the query encoder was trained against
        # its vectors; a reranker-only version serves queries with it too): copied, so the
        # version directory is complete on its own.
        copy_model(base.embedder_dir, job.out / "embedder")
        card["embedder"] = "embedder"
        card.setdefault("lineage", {})["documents"] = {
            "base_model": document_version_of(base.embedder_dir), "trained": False}
    negatives = {"negatives": f"every chunk of {job.index}"} if job.kind == "embedder" else \
        {"hard_negatives_from": job.index, "negatives_per_pair": job.negatives}
    card.setdefault("lineage", {})[job.kind] = {
        "base_model": base.version, "base_uri": str(job.base),
        "data": {"source": training.source, "sha256": digest,
                 "pairs": len(training.examples), **negatives,
                 "held_out_queries": held_out},
        "parameters": job.settings.to_dict(), "result": result, "metrics": metrics,
    }
    card.setdefault("training", {})[job.kind] = {"metrics": metrics, "result": result}
    path.write_text(json.dumps(card, indent=2, sort_keys=True))
    read_layout(job.out)  # the directory is a complete, loadable version
    return card
