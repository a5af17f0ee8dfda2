"""Retrieval evaluation on BEIR-layout datasets: corpus.jsonl, queries.jsonl, qrels/*.tsv.

Metrics are document-level: chunk hits are collapsed to their document (best rank wins),
because qrels judge documents.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BeirDataset:
    root: Path

    def corpus(self) -> Iterator[dict]:
        with open(self.root / "corpus.jsonl", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def queries(self) -> dict[str, str]:
        with open(self.root / "queries.jsonl", encoding="utf-8") as handle:
            return {q["_id"]: q["text"] for q in map(json.loads, handle) if q}

    def qrels(self, split: str = "test") -> dict[str, dict[str, int]]:
        judged: dict[str, dict[str, int]] = {}
        with open(self.root / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                judged.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
        return judged


TUNING_SEED = 13


def tuning_sample(query_ids: Iterable[str], size: int, seed: int = TUNING_SEED) -> list[str]:
    """A fixed, seeded sample of train-split query ids that ``ragrec eval`` tunes fusion and
    rerank weights on, and that ``ragrec train`` holds out of training (the same ids for the
    same seed, and the first ``size`` of a larger sample), so the tuning never looks at
    queries a model was trained on."""
    order = sorted(query_ids)
    random.Random(seed).shuffle(order)
    return sorted(order[:size])


def write_corpus_as_files(dataset: BeirDataset, folder: Path, every: int = 1) -> int:
    """One Markdown file per document (``# title`` then the text): a file:// source.
    ``every=10`` keeps one document in ten (a 10 % sample)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for index, doc in enumerate(dataset.corpus()):
        if index % every:
            continue
        title = (doc.get("title") or "").strip()
        body = f"# {title}\n\n{doc['text']}\n" if title else f"{doc['text']}\n"
        (folder / f"{doc['_id']}.md").write_text(body, encoding="utf-8")
        written += 1
    return written


def doc_ranking(hit_doc_ids: Iterable[str]) -> list[str]:
    """Collapse chunk hits (in rank order) to documents, keeping each document's best rank."""
    seen: dict[str, None] = {}
    for doc_id in hit_doc_ids:
        seen.setdefault(doc_id.removesuffix(".md"), None)
    return list(seen)


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    positives = {d for d, g in relevant.items() if g > 0}
    return len(positives & set(ranked[:k])) / len(positives) if positives else 0.0


def mrr_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_run(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries."""
    queries = [q for q in qrels if q in run]
    if not queries:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "queries": 0}
    return {
        "ndcg@10": sum(ndcg_at(run[q], qrels[q]) for q in queries) / len(queries),
        "recall@100": sum(recall_at(run[q], qrels[q]) for q in queries) / len(queries),
        "mrr@10": sum(mrr_at(run[q], qrels[q]) for q in queries) / len(queries),
        "queries": len(queries),
    }
