"""``bench.beir_cut``: the reshaped sets the fine-tuning bench runs on (a small collection,
a large train split) keep every answer of the queries they keep, and are reproducible."""

from __future__ import annotations

from beir_sets import write_tiny_beir

from bench.beir_cut import cut
from ragrec.eval.datasets import BeirDataset


def _documents(root) -> set[str]:
    return {d["_id"] for d in BeirDataset(root).corpus()}


def test_a_small_cut_keeps_each_kept_querys_answers_and_is_seeded(tmp_path):
    source = BeirDataset(write_tiny_beir(tmp_path / "source"))
    first = cut(source, tmp_path / "a", train_queries=2, test_queries=None, docs=8,
                titles_as_train=False, seed=3)
    again = cut(source, tmp_path / "b", train_queries=2, test_queries=None, docs=8,
                titles_as_train=False, seed=3)
    small = BeirDataset(tmp_path / "a")
    assert first == again and _documents(tmp_path / "a") == _documents(tmp_path / "b")
    assert len(small.qrels("train")) == 2 and len(small.qrels("test")) == 6
    assert len(_documents(tmp_path / "a")) == 8
    for split in ("train", "test"):
        for judged in small.qrels(split).values():
            assert judged.keys() <= _documents(tmp_path / "a")
    assert set(small.queries()) == set(small.qrels("train")) | set(small.qrels("test"))


def test_titles_of_uncited_documents_become_train_queries(tmp_path):
    source = BeirDataset(write_tiny_beir(tmp_path / "source"))
    summary = cut(source, tmp_path / "large", train_queries=None, test_queries=3, docs=None,
                  titles_as_train=True, seed=3)
    large = BeirDataset(tmp_path / "large")
    train, queries = large.qrels("train"), large.queries()
    cited = {d for q in list(large.qrels("test")) + [q for q in train if q.startswith("q-")]
             for d in (large.qrels("test").get(q) or train.get(q))}
    titled = {q: judged for q, judged in train.items() if q.startswith("title-")}
    uncited = _documents(tmp_path / "large") - cited
    assert {next(iter(judged)) for judged in titled.values()} == uncited
    assert all(queries[q] == next(iter(judged)).split("-")[0].title()
               for q, judged in titled.items())
    assert summary["train_queries"] == len(train) == 6 + len(titled)


def test_evidence_sentences_are_cut_to_the_kept_claims_and_documents(tmp_path):
    import json

    root = write_tiny_beir(tmp_path / "source")
    source = BeirDataset(root)
    (root / "rationales").mkdir()
    documents = sorted(_documents(root))
    with open(root / "rationales" / "sentences.jsonl", "w") as handle:
        for doc in documents:
            handle.write(json.dumps({"_id": doc, "sentences": [f"{doc} says so."]}) + "\n")
    for split in ("train", "test"):
        rows = [{"id": q, "claim": source.queries()[q], "evidence": {
            d: [{"label": "SUPPORT", "sentences": [0]}] for d in judged}}
            for q, judged in sorted(source.qrels(split).items())]
        (root / "rationales" / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
    summary = cut(source, tmp_path / "small", train_queries=2, test_queries=3, docs=7,
                  titles_as_train=False, seed=3)
    small = BeirDataset(tmp_path / "small")
    assert summary["rationales"] == {"train": 2, "test": 3}
    kept = _documents(tmp_path / "small")
    for split in ("train", "test"):
        rows = [json.loads(line) for line in
                (tmp_path / "small" / "rationales" / f"{split}.jsonl").read_text().splitlines()]
        assert {r["id"] for r in rows} == set(small.qrels(split))
        assert all(set(r["evidence"]) == set(small.qrels(split)[r["id"]]) for r in rows)
    sentences = (tmp_path / "small" / "rationales" / "sentences.jsonl").read_text().splitlines()
    assert {json.loads(line)["_id"] for line in sentences} == kept
