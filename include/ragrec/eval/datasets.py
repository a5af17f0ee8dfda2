"""BEIR-layout datasets (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), the
fixed train-split sample fusion and rerank weights are tuned on, and a corpus written out
as a folder of Markdown files (a ``file://`` source for the normal ingest path)."""

from __future__ import annotations

import csv
import json
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
