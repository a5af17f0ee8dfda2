"""The golden query set: a small BEIR-layout folder (``queries.jsonl``, ``qrels/<split>.tsv``;
no corpus needed) judged against the knowledge base's own document ids, scored on any index
version under a search spec - the spec that is (or will be) served, rerank included. The
retrieval gate of ``kb_reindex`` and ``quality_monitor`` read it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ragrec.eval.datasets import BeirDataset
from ragrec.eval.metrics import judged_ranking, score_run
from ragrec.retrieval import Searcher, SearchSpec


class GoldenSetError(ValueError):
    pass


@dataclass(frozen=True)
class GoldenScore:
    mode: str  # the spec's label
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    golden_sha256: str
    index: str
    model_version: str
    spec: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def golden_digest(folder: Path, split: str = "test") -> str:
    h = hashlib.sha256()
    for name in ("queries.jsonl", f"qrels/{split}.tsv"):
        h.update(hashlib.sha256((folder / name).read_bytes()).digest())
    return h.hexdigest()


def load_golden(folder: Path, split: str = "test") -> tuple[dict[str, str], dict]:
    """(queries, qrels) of the judged queries, or a clear ``GoldenSetError``."""
    for name in ("queries.jsonl", f"qrels/{split}.tsv"):
        if not (folder / name).is_file():
            raise GoldenSetError(f"golden set {folder} has no {name}")
    dataset = BeirDataset(folder)
    qrels, queries = dataset.qrels(split), dataset.queries()
    missing = sorted(q for q in qrels if q not in queries)
    if missing:
        raise GoldenSetError(f"golden qrels name queries that queries.jsonl lacks: {missing[:5]}")
    if not qrels:
        raise GoldenSetError(f"golden set {folder} judges no queries in {split}")
    return {q: queries[q] for q in qrels}, qrels


def evaluate_golden(searcher: Searcher, index: str, folder: Path, spec: SearchSpec,
                    split: str = "test") -> GoldenScore:
    """The golden set on ``index`` ranked exactly as ``Searcher.search`` ranks under
    ``spec``, the chunk hits collapsed to judged documents."""
    queries, qrels = load_golden(folder, split)
    judged = {d for docs in qrels.values() for d in docs}
    version = searcher.model_version(index)
    run = {qid: judged_ranking((h.doc_id for h in searcher.search(
        index, text, spec, k=None, version=version).hits), judged)
        for qid, text in queries.items()}
    metrics = score_run(run, qrels)
    return GoldenScore(spec.label, round(metrics["ndcg@10"], 4),
                       round(metrics["recall@100"], 4), round(metrics["mrr@10"], 4),
                       len(qrels), golden_digest(folder, split), index, version,
                       spec.to_dict())
