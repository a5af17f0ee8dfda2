"""``ragrec eval``: a model version on a BEIR dataset, every retrieval mode, one report.

1. The corpus is indexed through the normal ingest path (files under the cache, then
   ``Ingestor``) unless the alias already holds it with this model version.
2. For each query: BM25 and dense chunk hits (``depth`` each), collapsed to documents.
3. Modes: ``bm25``, ``dense``, ``hybrid`` (RRF), ``hybrid-convex`` (normalised-score blend)
   and ``hybrid+rerank`` (top ``rerank_top`` documents of the better hybrid re-scored by the
   cross-encoder, blended with the first-stage score).
4. The convex weight, the first stage for reranking and the rerank blend are chosen on a
   fixed sample of the **train** split (``evaluation.tuning_sample``, the same queries
   ``ragrec train`` holds out of training); the evaluated split is never looked at for that.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from elasticsearch import Elasticsearch

from ragrec.evaluation import BeirDataset, score_run, tuning_sample
from ragrec.retrieval import fusion

MODES = ("bm25", "dense", "hybrid", "hybrid-convex", "hybrid+rerank")
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


class EvalError(ValueError):
    pass


@dataclass(frozen=True)
class EvalSettings:
    split: str = "test"
    tune_split: str = "train"
    tune_queries: int = 150
    depth: int = 300  # chunks per system per query (Recall@100 needs > 100 documents)
    rerank_top: int = 50
    seed: int = 13


@dataclass
class Candidates:
    bm25: dict[str, float] = field(default_factory=dict)
    dense: dict[str, float] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # doc -> its best chunk's text


@dataclass
class EvalReport:
    dataset: str
    split: str
    index: str
    model_version: str
    reranker_version: str | None
    metrics: dict[str, dict[str, float]]
    tuned: dict[str, object]
    seconds: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def gather(client: Elasticsearch, alias: str, embedder, queries: dict[str, str],
           depth: int) -> dict[str, Candidates]:
    from ragrec import retrieval

    ids = list(queries)
    vectors = embedder.embed([queries[q] for q in ids]).vectors
    found: dict[str, Candidates] = {}
    for number, (qid, vector) in enumerate(zip(ids, vectors, strict=True), start=1):
        lexical = retrieval.bm25(client, alias, queries[qid], depth)
        semantic = retrieval.dense(client, alias, vector, depth, num_candidates=depth * 2)
        entry = Candidates(fusion.collapse((h.doc_id, h.score) for h in lexical),
                           fusion.collapse((h.doc_id, h.score) for h in semantic))
        for hit in semantic + lexical:
            entry.texts.setdefault(hit.doc_id, (f"{hit.title}\n{hit.text}" if hit.title
                                                else hit.text))
        found[qid] = entry
        if number % 100 == 0:
            _say(f"  retrieved {number}/{len(ids)} queries")
    return found


def _doc(doc_id: str) -> str:
    return doc_id.removesuffix(".md")


def first_stage_runs(found: dict[str, Candidates], convex_weight: float) -> dict[str, dict]:
    """mode -> qid -> (ranked docs, scores) for the modes without a reranker."""
    runs: dict[str, dict] = {m: {} for m in ("bm25", "dense", "hybrid", "hybrid-convex")}
    for qid, c in found.items():
        fused = fusion.rrf([fusion.ranked(c.bm25), fusion.ranked(c.dense)])
        mixed = fusion.convex(c.bm25, c.dense, convex_weight)
        for mode, scores in (("bm25", c.bm25), ("dense", c.dense), ("hybrid", fused),
                             ("hybrid-convex", mixed)):
            runs[mode][qid] = (fusion.ranked(scores), scores)
    return runs


def _as_docs(run: dict) -> dict[str, list[str]]:
    return {qid: [_doc(d) for d in ranking] for qid, (ranking, _) in run.items()}


def _ndcg(run: dict, qrels) -> float:
    return score_run(_as_docs(run), qrels)["ndcg@10"]


def rerank_scores(reranker, query: str, candidates: Candidates, head: list[str]) -> dict:
    scores = reranker.score(query, [candidates.texts[d] for d in head])
    return dict(zip(head, map(float, scores), strict=True))


def tune(found, queries, qrels, reranker, settings: EvalSettings) -> dict:
    tuned: dict[str, object] = {}
    per_weight = {w: _ndcg(first_stage_runs(found, w)["hybrid-convex"], qrels) for w in WEIGHTS}
    tuned["convex_weight"] = max(WEIGHTS, key=lambda w: (per_weight[w], -abs(w - 0.5)))
    tuned["convex_train_ndcg"] = {str(w): round(v, 4) for w, v in per_weight.items()}
    runs = first_stage_runs(found, tuned["convex_weight"])
    stage = max(("hybrid", "hybrid-convex"), key=lambda m: _ndcg(runs[m], qrels))
    tuned["rerank_first_stage"] = stage
    if reranker is None:
        return tuned
    cross = {}
    for qid, (ranking, _) in runs[stage].items():
        cross[qid] = rerank_scores(reranker, queries[qid], found[qid],
                                   ranking[: settings.rerank_top])
    per_blend = {}
    for weight in WEIGHTS:
        run = {qid: (fusion.blend_rerank(ranking, cross[qid], scores, weight), {})
               for qid, (ranking, scores) in runs[stage].items()}
        per_blend[weight] = _ndcg(run, qrels)
    tuned["rerank_weight"] = max(WEIGHTS, key=lambda w: (per_blend[w], w))
    tuned["rerank_train_ndcg"] = {str(w): round(v, 4) for w, v in per_blend.items()}
    return tuned


def evaluate(client: Elasticsearch, alias: str, dataset: BeirDataset, embedder,
             reranker=None, modes=MODES, settings: EvalSettings = EvalSettings(),
             reranker_version: str | None = None) -> EvalReport:
    seconds: dict[str, float] = {}
    queries = dataset.queries()
    tuned: dict[str, object] = {}
    needs_tuning = any(m in modes for m in ("hybrid-convex", "hybrid+rerank"))
    if needs_tuning:
        started = time.monotonic()
        train = dataset.qrels(settings.tune_split)
        sample = tuning_sample(train, settings.tune_queries, settings.seed)
        _say(f"tuning on {len(sample)} {settings.tune_split} queries")
        found = gather(client, alias, embedder, {q: queries[q] for q in sample}, settings.depth)
        tuned = tune(found, queries, {q: train[q] for q in sample},
                     reranker if "hybrid+rerank" in modes else None, settings)
        tuned["tune_queries"] = len(sample)
        seconds["tuning"] = round(time.monotonic() - started, 1)

    qrels = dataset.qrels(settings.split)
    started = time.monotonic()
    _say(f"evaluating {len(qrels)} {settings.split} queries")
    found = gather(client, alias, embedder, {q: queries[q] for q in qrels}, settings.depth)
    runs = first_stage_runs(found, float(tuned.get("convex_weight", 0.5)))
    seconds["retrieval"] = round(time.monotonic() - started, 1)
    metrics = {}
    for mode in modes:
        if mode == "hybrid+rerank":
            continue
        metrics[mode] = _rounded(score_run(_as_docs(runs[mode]), qrels))
    if "hybrid+rerank" in modes and reranker is not None:
        started = time.monotonic()
        stage = runs[str(tuned["rerank_first_stage"])]
        weight = float(tuned["rerank_weight"])
        reranked = {}
        for number, (qid, (ranking, scores)) in enumerate(stage.items(), start=1):
            cross = rerank_scores(reranker, queries[qid], found[qid],
                                  ranking[: settings.rerank_top])
            reranked[qid] = (fusion.blend_rerank(ranking, cross, scores, weight), {})
            if number % 50 == 0:
                _say(f"  reranked {number}/{len(stage)} queries")
        metrics["hybrid+rerank"] = _rounded(score_run(_as_docs(reranked), qrels))
        seconds["rerank"] = round(time.monotonic() - started, 1)
    return EvalReport(str(dataset.root), settings.split, alias, embedder.model_version,
                      reranker_version, metrics, tuned, seconds)


def _rounded(scores: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}


def corpus_folder(dataset: BeirDataset, cache: Path) -> Path:
    """The dataset's corpus as Markdown files (written once per corpus content)."""
    from ragrec.evaluation import write_corpus_as_files

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
    from ragrec.indexing import versions
    from ragrec.sources import LocalSource
    from ragrec.sync import IngestOptions, Ingestor

    live = versions.current_version(client, alias)
    full = bool(live) and versions.index_meta(client, live).get("model_version") \
        != embedder.model_version
    ingestor = Ingestor(client, embedder, ModelTokenizer(tokenizer_dir),
                        IngestOptions(full=full, show_progress=show_progress))
    return ingestor.ingest(LocalSource(corpus_folder(dataset, cache)), alias)
