"""``ragrec eval``: a model version on a BEIR dataset, every retrieval mode, one report.

1. The corpus is indexed through the normal ingest path (files under the cache, then
   ``Ingestor``) unless the alias already holds it with this model version.
2. Each mode is a ``SearchSpec`` ranked by ``retrieval.Searcher`` - the path the API
   serves: ``bm25``, ``dense``, ``hybrid`` (RRF), ``hybrid-convex`` (normalised-score blend)
   and ``hybrid+rerank`` (the better hybrid's top ``rerank_top`` chunks re-scored by the
   cross-encoder and blended with the first stage). The legs of a query are fetched once
   and ranked under every spec; the chunk hits are then collapsed to documents.
3. The convex weight, the first stage for reranking and the rerank blend are chosen on a
   fixed sample of the **train** split (``datasets.tuning_sample``, the same queries
   ``ragrec train`` holds out of training); the evaluated split is never looked at for that.
   Each keeps its untuned default unless another value wins by more than one standard error
   (``settled``), so a small sample does not pick a weight by noise.
   The report carries each mode's spec, ready to gate and serve.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from elasticsearch import Elasticsearch

from ragrec.eval.datasets import BeirDataset, tuning_sample, write_corpus_as_files
from ragrec.eval.metrics import judged_ranking, ndcg_by_query, score_run
from ragrec.retrieval import Hit, Searcher, SearchSpec

MODES = ("bm25", "dense", "hybrid", "hybrid-convex", "hybrid+rerank")
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


class EvalError(ValueError):
    pass


@dataclass(frozen=True)
class EvalSettings:
    split: str = "test"
    tune_split: str = "train"
    tune_queries: int = 150
    depth: int = 300  # chunks per leg per query (Recall@100 needs > 100 documents)
    rerank_top: int = 50
    seed: int = 13


@dataclass
class EvalReport:
    dataset: str
    split: str
    index: str
    model_version: str
    reranker_version: str | None
    metrics: dict[str, dict[str, float]]
    specs: dict[str, dict]
    tuned: dict[str, object]
    seconds: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mode_specs(settings: EvalSettings, convex_weight: float = 0.5,
               first_stage: str = "hybrid", rerank_weight: float = 1.0) -> dict[str, SearchSpec]:
    """Each mode's spec at the evaluation depth."""
    depth = settings.depth
    specs = {"bm25": SearchSpec("bm25", depth=depth), "dense": SearchSpec("dense", depth=depth),
             "hybrid": SearchSpec("hybrid", "rrf", depth=depth),
             "hybrid-convex": SearchSpec("hybrid", "convex", convex_weight, depth=depth)}
    specs["hybrid+rerank"] = specs[first_stage].overridden(
        rerank=True, rerank_top=settings.rerank_top, rerank_weight=rerank_weight)
    return specs


class Run:
    """One query set's legs, fetched once (both legs, at one depth), ranked under any spec
    by the searcher; rerank scores are kept per query, so blend weights cost nothing."""

    def __init__(self, searcher: Searcher, alias: str, queries: dict[str, str], depth: int,
                 version: str | None = None):
        """``version``: the model version whose encoder ranks (default: the index's own)."""
        self.searcher, self.alias, self.queries = searcher, alias, queries
        self.version = version or searcher.model_version(alias)
        self.legs: dict[str, dict[str, list[Hit]]] = {}
        self._cross: dict[str, dict[str, float]] = {}
        legs_spec = SearchSpec("hybrid", depth=depth)
        for number, (qid, text) in enumerate(queries.items(), start=1):
            self.legs[qid] = searcher.legs(alias, text, legs_spec, self.version)
            if number % 100 == 0:
                _say(f"  retrieved {number}/{len(queries)} queries")

    def hits(self, spec: SearchSpec) -> dict[str, list[Hit]]:
        """qid -> the chunk ranking ``Searcher.search`` gives under ``spec``."""
        return {qid: self.searcher.rank(self.queries[qid], legs, spec, self.version,
                                        self._cross.setdefault(qid, {}))
                for qid, legs in self.legs.items()}

    def rankings(self, spec: SearchSpec, qrels: dict[str, dict[str, int]]
                 ) -> dict[str, list[str]]:
        judged = {d for docs in qrels.values() for d in docs}
        return {qid: judged_ranking((h.doc_id for h in hits), judged)
                for qid, hits in self.hits(spec).items()}

    def scores(self, spec: SearchSpec, qrels: dict[str, dict[str, int]]) -> dict[str, float]:
        return score_run(self.rankings(spec, qrels), qrels)

    def ndcg(self, spec: SearchSpec, qrels: dict[str, dict[str, int]]) -> dict[str, float]:
        """qid -> nDCG@10 under ``spec``."""
        return ndcg_by_query(self.rankings(spec, qrels), qrels)


def settled(per_query: dict, default):
    """Of the options (``per_query``: option -> qid -> nDCG@10, in order of preference on a
    tie), the best by mean among ``default`` and those whose gain over it on the same queries
    is more than one standard error of the per-query differences. A weight that wins a small
    tuning sample by noise loses on unseen queries (on 25 queries a rerank weight chosen by
    its mean gained 0.0035 there and cost 0.03 on the test split)."""
    def beats_default(option) -> bool:
        differences = [per_query[option][q] - value for q, value in per_query[default].items()]
        if option == default or len(differences) < 2:
            return False
        error = statistics.stdev(differences) / math.sqrt(len(differences))
        return _mean(differences) > error

    candidates = [default] + [option for option in per_query if beats_default(option)]
    return max(candidates, key=lambda option: _mean(per_query[option].values()))


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def tune(run: Run, qrels, settings: EvalSettings, rerank: bool) -> dict:
    """Each choice keeps its untuned default (convex weight 0.5, RRF as the first stage, no
    rerank blend) unless another option beats it on the tuning sample by more than noise
    (``settled``)."""
    tuned: dict[str, object] = {}
    base = mode_specs(settings)["hybrid-convex"]
    per_weight = {w: run.ndcg(base.overridden(dense_weight=w), qrels)
                  for w in sorted(WEIGHTS, key=lambda w: abs(w - 0.5))}
    tuned["convex_weight"] = settled(per_weight, 0.5)
    tuned["convex_train_ndcg"] = {str(w): round(_mean(per_weight[w].values()), 4)
                                 for w in WEIGHTS}
    specs = mode_specs(settings, tuned["convex_weight"])
    per_stage = {m: run.ndcg(specs[m], qrels) for m in ("hybrid", "hybrid-convex")}
    tuned["rerank_first_stage"] = settled(per_stage, "hybrid")
    if not rerank:
        return tuned
    head = specs[tuned["rerank_first_stage"]]
    per_blend = {w: run.ndcg(head.overridden(rerank=True, rerank_top=settings.rerank_top,
                                             rerank_weight=w), qrels)
                 for w in WEIGHTS}
    tuned["rerank_weight"] = settled(per_blend, 0.0)
    tuned["rerank_train_ndcg"] = {str(w): round(_mean(per_blend[w].values()), 4)
                                 for w in WEIGHTS}
    if not tuned["rerank_weight"]:
        _say("rerank blend weight 0: the reranker did not beat the first stage by more than "
             f"its standard error on {len(qrels)} tuning queries")
    return tuned


def evaluate(searcher: Searcher, alias: str, dataset: BeirDataset, modes=MODES,
             settings: EvalSettings = EvalSettings(), reranker_version: str | None = None
             ) -> EvalReport:
    """``searcher.models`` must encode the index's model version (and rerank, for
    ``hybrid+rerank``)."""
    seconds: dict[str, float] = {}
    queries = dataset.queries()
    tuned: dict[str, object] = {}
    if any(m in modes for m in ("hybrid-convex", "hybrid+rerank")):
        started = time.monotonic()
        train = dataset.qrels(settings.tune_split)
        sample = tuning_sample(train, settings.tune_queries, settings.seed)
        _say(f"tuning on {len(sample)} {settings.tune_split} queries")
        run = Run(searcher, alias, {q: queries[q] for q in sample}, settings.depth)
        tuned = tune(run, {q: train[q] for q in sample}, settings, "hybrid+rerank" in modes)
        tuned["tune_queries"] = len(sample)
        seconds["tuning"] = round(time.monotonic() - started, 1)
    specs = mode_specs(settings, float(tuned.get("convex_weight", 0.5)),
                       str(tuned.get("rerank_first_stage", "hybrid")),
                       float(tuned.get("rerank_weight", 1.0)))
    qrels = dataset.qrels(settings.split)
    started = time.monotonic()
    _say(f"evaluating {len(qrels)} {settings.split} queries")
    run = Run(searcher, alias, {q: queries[q] for q in qrels}, settings.depth)
    seconds["retrieval"] = round(time.monotonic() - started, 1)
    metrics = {}
    for mode in modes:
        started = time.monotonic()
        metrics[mode] = _rounded(run.scores(specs[mode], qrels))
        if specs[mode].reranks:
            seconds["rerank"] = round(time.monotonic() - started, 1)
    return EvalReport(str(dataset.root), settings.split, alias, run.version,
                      reranker_version, metrics, {m: specs[m].to_dict() for m in modes},
                      tuned, seconds)


def evaluate_model(client: Elasticsearch, dataset: BeirDataset, alias: str, model_uri: str,
                   reranker_uri: str | None = None, modes=MODES,
                   settings: EvalSettings = EvalSettings(), backend: str | None = None,
                   show_progress: bool = True) -> dict:
    """``ragrec eval`` (retrieval) on one model version: its encoder indexes the corpus under
    ``alias`` (unless it already holds it), then ``evaluate``; the reranker is
    ``reranker_uri``'s, else the version's own (``hybrid+rerank`` is skipped, and said so,
    when there is none). The report as a dict."""
    from ragrec.config import cache_dir
    from ragrec.embedding import encoder_for
    from ragrec.models.uris import load_layout
    from ragrec.retrieval import PinnedModels

    layout = load_layout(model_uri)
    embedder = encoder_for(layout.embedder_dir, backend)
    reranker, reranker_version = None, None
    if "hybrid+rerank" in modes:
        rerank_layout = load_layout(reranker_uri) if reranker_uri else layout
        if rerank_layout.reranker_dir is None:
            _say(f"hybrid+rerank skipped: model {rerank_layout.version} has no reranker "
                 "(pass --reranker MODEL)")
            modes = tuple(m for m in modes if m != "hybrid+rerank")
        else:
            from ragrec.models.reranker import load_cross_encoder

            reranker = load_cross_encoder(rerank_layout.reranker_dir)
            reranker_version = rerank_layout.version
    summary = ensure_index(client, alias, dataset, embedder, layout.embedder_dir,
                           cache_dir(), show_progress=show_progress)
    _say(f"index {alias}: {summary.docs_seen} documents, {summary.docs_new} new, "
         f"{summary.chunks_indexed} chunks indexed ({summary.model_version})")
    queries = encoder_for(layout.query_encoder_dir, backend) if layout.query_encoder_dir \
        else None
    searcher = Searcher(client, PinnedModels(embedder, reranker, queries))
    return evaluate(searcher, alias, dataset, modes, settings, reranker_version).to_dict()


def _rounded(scores: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}


def corpus_folder(dataset: BeirDataset, cache: Path) -> Path:
    """The dataset's corpus as Markdown files (written once per corpus content)."""
    corpus = dataset.root / "corpus.jsonl"
    digest = hashlib.sha256(f"{corpus.resolve()}:{corpus.stat().st_size}:"
                            f"{corpus.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache / "eval-corpora" / digest
    done = folder / ".complete"
    if not done.is_file():
        write_corpus_as_files(dataset, folder / "files")
        done.write_text("ok")
    return folder / "files"


def ensure_index(client: Elasticsearch, alias: str, dataset: BeirDataset, embedder,
                 tokenizer_dir: Path, cache: Path, show_progress: bool = True):
    """Indexes the corpus under ``alias`` with ``embedder`` through the normal ingest path:
    incremental when the alias already has this model version (a no-op when complete),
    a full rebuild into a new version when it was built with another model."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.config import IndexLayoutSettings
    from ragrec.indexing import versions
    from ragrec.sources import LocalSource
    from ragrec.sync import IngestOptions, Ingestor

    live = versions.current_version(client, alias)
    language = IndexLayoutSettings.from_env().language  # RAGREC_LANGUAGE, as ingest reads it
    meta = versions.index_meta(client, live) if live else {}
    full = bool(live) and (meta.get("model_version") != embedder.model_version
                           or language not in (None, "auto", meta.get("language")))
    ingestor = Ingestor(client, embedder, ModelTokenizer(tokenizer_dir),
                        IngestOptions(full=full, show_progress=show_progress,
                                      language=language))
    return ingestor.ingest(LocalSource(corpus_folder(dataset, cache)), alias)
