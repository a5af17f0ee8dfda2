"""The golden query set: a small BEIR-layout folder (``queries.jsonl``, ``qrels/<split>.tsv``;
no corpus needed) judged against the knowledge base's own document ids, evaluated on any
index version. The retrieval gate of ``kb_reindex`` and ``quality_monitor`` read it.

A judged id matches an indexed document whose id is the same, or the same without its file
extension, or whose file name without extension it is (``4983`` matches ``scifact/4983.md``).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from elasticsearch import Elasticsearch

from ragrec.eval.runner import gather
from ragrec.evaluation import BeirDataset, score_run
from ragrec.retrieval import fusion

MODES = ("bm25", "dense", "hybrid")


class GoldenSetError(ValueError):
    pass


@dataclass(frozen=True)
class GoldenScore:
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    golden_sha256: str
    index: str
    model_version: str

    def to_dict(self) -> dict:
        return asdict(self)


def golden_digest(folder: Path, split: str = "test") -> str:
    h = hashlib.sha256()
    for name in ("queries.jsonl", f"qrels/{split}.tsv"):
        h.update(hashlib.sha256((folder / name).read_bytes()).digest())
    return h.hexdigest()


def _keys(doc_id: str) -> tuple[str, ...]:
    path = PurePosixPath(doc_id)
    return (doc_id, doc_id.rsplit(".", 1)[0] if "." in path.name else doc_id, path.stem)


def evaluate_golden(client: Elasticsearch, index: str, embedder, folder: Path,
                    mode: str = "hybrid", split: str = "test", depth: int = 100) -> GoldenScore:
    if mode not in MODES:
        raise GoldenSetError(f"golden mode must be one of {MODES}, not {mode!r}")
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
    judged = {d for docs in qrels.values() for d in docs}
    found = gather(client, index, embedder, {q: queries[q] for q in qrels}, depth)
    run = {}
    for qid, c in found.items():
        scores = {"bm25": c.bm25, "dense": c.dense,
                  "hybrid": fusion.rrf([fusion.ranked(c.bm25), fusion.ranked(c.dense)])}[mode]
        ranking = []
        for doc_id in fusion.ranked(scores):
            key = next((k for k in _keys(doc_id) if k in judged), doc_id)
            if key not in ranking:
                ranking.append(key)
        run[qid] = ranking
    metrics = score_run(run, qrels)
    return GoldenScore(mode, round(metrics["ndcg@10"], 4), round(metrics["recall@100"], 4),
                       round(metrics["mrr@10"], 4), len(qrels), golden_digest(folder, split),
                       index, embedder.model_version)
