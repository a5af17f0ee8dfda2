"""A smaller or reshaped BEIR set cut from a larger one, so the fine-tuning bench can be run
on the shapes of data the team does not hold (a small collection, a large training split):

    python -m bench.beir_cut OUT --train-queries 125 --docs 1500          # a small set
    python -m bench.beir_cut OUT --titles-as-train                        # a large train split

The corpus keeps every document a kept query cites, then a seeded sample of the others up
to ``--docs``. ``--titles-as-train`` adds one training query per document its kept queries
do not cite (the document's title, the document its one relevant answer): thousands of train
queries unlike the test ones, as when a customer's training log comes from another source
than the questions to come. Test queries are kept whole (``--test-queries`` samples them).
A source with ``rationales/`` (evidence sentences) gets them cut to the kept claims and
documents. Seeded: the same arguments cut the same set."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from bench import SCIFACT
from ragrec.eval.datasets import BeirDataset


def _sample(items: list, size: int | None, rng: random.Random) -> list:
    return items if size is None or size >= len(items) else sorted(rng.sample(items, size))


def cut(source: BeirDataset, out: Path, train_queries: int | None, test_queries: int | None,
        docs: int | None, titles_as_train: bool, seed: int) -> dict:
    rng = random.Random(seed)
    queries = source.queries()
    splits = {"train": source.qrels("train"), "test": source.qrels("test")}
    splits["train"] = {q: splits["train"][q]
                       for q in _sample(sorted(splits["train"]), train_queries, rng)}
    splits["test"] = {q: splits["test"][q]
                      for q in _sample(sorted(splits["test"]), test_queries, rng)}
    corpus = {d["_id"]: d for d in source.corpus()}
    cited = sorted({doc for split in splits.values() for judged in split.values()
                    for doc in judged} & corpus.keys())
    others = sorted(corpus.keys() - set(cited))
    fill = None if docs is None else max(0, docs - len(cited))
    kept = set(cited) | set(_sample(others, fill, rng))
    if titles_as_train:
        for doc_id in sorted(kept - set(cited)):
            title = (corpus[doc_id].get("title") or "").strip()
            if title:
                query_id = f"title-{doc_id}"
                queries[query_id] = title
                splits["train"][query_id] = {doc_id: 1}
    for split in splits.values():  # a query judged only on cut documents has no answer here
        for query_id in list(split):
            split[query_id] = {d: s for d, s in split[query_id].items() if d in kept}
            if not split[query_id]:
                del split[query_id]
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id in sorted(kept):
            handle.write(json.dumps(corpus[doc_id]) + "\n")
    used = {q for split in splits.values() for q in split}
    with open(out / "queries.jsonl", "w", encoding="utf-8") as handle:
        for query_id in sorted(used):
            handle.write(json.dumps({"_id": query_id, "text": queries[query_id]}) + "\n")
    for name, split in splits.items():
        with open(out / "qrels" / f"{name}.tsv", "w", encoding="utf-8") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for query_id in sorted(split):
                for doc_id, score in sorted(split[query_id].items()):
                    handle.write(f"{query_id}\t{doc_id}\t{score}\n")
    rationales = _cut_rationales(source.root / "rationales", out / "rationales", splits, kept)
    trained_on = {d for judged in splits["train"].values() for d in judged}
    unseen = sum(1 for judged in splits["test"].values() if not trained_on & judged.keys())
    return {"documents": len(kept), "train_queries": len(splits["train"]),
            "test_queries": len(splits["test"]), "test_queries_citing_no_train_document": unseen,
            "rationales": rationales}


def _cut_rationales(source: Path, out: Path, splits: dict, kept: set[str]) -> dict | None:
    """The source's ``rationales/`` (human evidence sentences), when it has them, for the
    kept claims and documents: the answer benchmarks score the cut set as the whole one."""
    if not (source / "sentences.jsonl").exists():
        return None
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, split in splits.items():
        if not (source / f"{name}.jsonl").exists():
            continue
        rows = []
        with open(source / f"{name}.jsonl", encoding="utf-8") as handle:
            for row in map(json.loads, filter(str.strip, handle)):
                if str(row["id"]) in split:
                    row["evidence"] = {d: e for d, e in (row.get("evidence") or {}).items()
                                       if d in kept}
                    rows.append(row)
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                           encoding="utf-8")
        written[name] = len(rows)
    with open(source / "sentences.jsonl", encoding="utf-8") as handle, \
            open(out / "sentences.jsonl", "w", encoding="utf-8") as target:
        for line in handle:
            if line.strip() and str(json.loads(line)["_id"]) in kept:
                target.write(line if line.endswith("\n") else line + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the BEIR set into")
    parser.add_argument("--source", type=Path, default=SCIFACT,
                        help="BEIR set to cut from (default: the shared SciFact)")
    parser.add_argument("--train-queries", type=int, help="train queries to keep (default all)")
    parser.add_argument("--test-queries", type=int, help="test queries to keep (default all)")
    parser.add_argument("--docs", type=int, help="documents to keep (default all; every "
                        "document a kept query cites stays)")
    parser.add_argument("--titles-as-train", action="store_true",
                        help="add each uncited document's title as a train query")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if (args.out / "corpus.jsonl").exists():
        print(f"{args.out} already holds a BEIR set; choose an empty folder", file=sys.stderr)
        return 2
    summary = cut(BeirDataset(args.source), args.out, args.train_queries, args.test_queries,
                  args.docs, args.titles_as_train, args.seed)
    print(json.dumps({"asked": vars(args), "cut": summary}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
