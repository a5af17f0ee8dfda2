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


class DatasetError(ValueError):
    """A dataset file that is missing or malformed: which file, which line, what is wrong."""


@dataclass(frozen=True)
class BeirDataset:
    root: Path

    def corpus(self) -> Iterator[dict]:
        for record in _records(self.root / "corpus.jsonl", ("_id", "text")):
            yield {**record, "_id": str(record["_id"])}

    def queries(self) -> dict[str, str]:
        return {str(q["_id"]): q["text"]
                for q in _records(self.root / "queries.jsonl", ("_id", "text"))}

    def qrels(self, split: str = "test") -> dict[str, dict[str, int]]:
        path = self.root / "qrels" / f"{split}.tsv"
        if not path.is_file():
            splits = sorted(p.stem for p in (self.root / "qrels").glob("*.tsv"))
            raise DatasetError(f"{path} is missing (splits here: {', '.join(splits) or 'none'})")
        judged: dict[str, dict[str, int]] = {}
        with _opened(path) as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            missing = {"query-id", "corpus-id", "score"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f"{path}: the header lacks {', '.join(sorted(missing))} "
                                   "(query-id, corpus-id, score, tab-separated)")
            for number, row in enumerate(reader, start=2):
                try:
                    score = int(row["score"])
                except (TypeError, ValueError):
                    raise DatasetError(f"{path}:{number}: score {row['score']!r} is not a "
                                       "whole number") from None
                judged.setdefault(row["query-id"], {})[row["corpus-id"]] = score
        return judged


def _opened(path: Path):
    try:
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing: a BEIR dataset holds corpus.jsonl, "
                           "queries.jsonl and qrels/<split>.tsv") from None


def _records(path: Path, needed: tuple[str, ...]) -> Iterator[dict]:
    with _opened(path) as handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                lacking = [k for k in needed if not isinstance(record, dict) or k not in record]
                if lacking:
                    raise DatasetError(f"{path}:{number}: no {' or '.join(lacking)} field")
                yield record
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: not UTF-8 text (after line {number})") from None


TUNING_SEED = 13
TUNING_FRACTION = 0.2  # the tuning sample's most of the train queries: the rest trains


def tuning_size(available: int, requested: int) -> int:
    """How many of ``available`` train queries a tuning sample of ``requested`` takes: at
    most ``TUNING_FRACTION`` of them, so a small split is never all held out."""
    return max(0, min(requested, int(available * TUNING_FRACTION)))


def tuning_sample(query_ids: Iterable[str], size: int, seed: int = TUNING_SEED) -> list[str]:
    """A fixed, seeded sample of train-split query ids that ``ragrec eval`` tunes fusion and
    rerank weights on, and that ``ragrec train`` holds out of training (the same ids for the
    same seed, and the first ``size`` of a larger sample), so the tuning never looks at
    queries a model was trained on. ``size`` is capped by ``tuning_size``."""
    order = sorted(query_ids)
    random.Random(seed).shuffle(order)
    return sorted(order[:tuning_size(len(order), size)])


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
