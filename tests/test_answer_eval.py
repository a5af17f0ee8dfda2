"""``ragrec eval answers`` end to end on the real node: a small slice of SciFact (its claims,
evidence abstracts and distractors, with the human rationales) answered through the answer
path, the cited sentences scored against the evidence, JSON and HTML reports written."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED_DATA

SCIFACT = SHARED_DATA / "scifact"
pytestmark = pytest.mark.skipif(not (SCIFACT / "rationales").is_dir(),
                                reason="SciFact rationales missing")


def _slice(folder, claims_per_split=6, distractors=30):
    """A BEIR folder with a few claims of each split, their evidence abstracts, some
    distractors, and the matching rationales."""
    rationale_rows = {}
    keep_docs: set[str] = set()
    for split in ("train", "test"):
        rows = [json.loads(line) for line in open(SCIFACT / "rationales" / f"{split}.jsonl")]
        chosen = [r for r in rows if r["evidence"]][:claims_per_split] + \
            [r for r in rows if not r["evidence"]][:2]
        rationale_rows[split] = chosen
        keep_docs |= {d for r in chosen for d in r["evidence"]}
    corpus = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl")]
    others = [d["_id"] for d in corpus if d["_id"] not in keep_docs]
    keep_docs |= set(random.Random(5).sample(others, distractors))
    (folder / "qrels").mkdir(parents=True)
    (folder / "rationales").mkdir()
    with open(folder / "corpus.jsonl", "w") as handle:
        for doc in corpus:
            if doc["_id"] in keep_docs:
                handle.write(json.dumps(doc) + "\n")
    with open(folder / "queries.jsonl", "w") as handle:
        for rows in rationale_rows.values():
            for r in rows:
                handle.write(json.dumps({"_id": r["id"], "text": r["claim"]}) + "\n")
    for split, rows in rationale_rows.items():
        with open(folder / "qrels" / f"{split}.tsv", "w") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for r in rows:
                for d in r["evidence"]:
                    handle.write(f"{r['id']}\t{d}\t1\n")
        with open(folder / "rationales" / f"{split}.jsonl", "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
    with open(folder / "rationales" / "sentences.jsonl", "w") as handle:
        for line in open(SCIFACT / "rationales" / "sentences.jsonl"):
            if json.loads(line)["_id"] in keep_docs:
                handle.write(line)
    return rationale_rows


def _run(args, es_url, cache):
    env = {**os.environ, "ES_URL": es_url, "RAGREC_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "ragrec.cli", "eval", "answers", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_answers_are_judged_against_the_human_evidence(es, es_url, tmp_path):
    data = tmp_path / "mini"
    rows = _slice(data)
    reports = tmp_path / "reports"
    alias = "ragrec-test-answer-eval"
    result = _run(["--dataset", str(data), "--index", alias, "--json", "--tune-claims", "8",
                   "--report-dir", str(reports)], es_url, tmp_path / "cache")
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        (label, entry), = report["systems"].items()
        metrics = entry["metrics"]
        assert metrics["claims"] == len(rows["test"])
        assert metrics["claims_with_evidence"] == sum(bool(r["evidence"]) for r in rows["test"])
        # On a small corpus the evidence abstracts are found and some evidence cited.
        assert metrics["claims_citing_evidence"] >= 0.5
        assert 0 < metrics["sentence_f1"] <= 1
        assert entry["tuned"]["claims"] > 0 and entry["selector"] == "cosine"
        assert "never the reported split" in report["protocol"]
        page = (reports / "answers-test.html").read_text()
        assert label in page and "sentence_f1" in page
        assert json.loads((reports / "answers-test.json").read_text())["systems"]
    finally:
        for name in es.indices.get(index=f"{alias}*", expand_wildcards="all"):
            es.indices.delete(index=name, ignore_unavailable=True)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "test.jsonl").write_text('{"id": 1}\n')
    (broken / "sentences.jsonl").write_text("")
    bad = _run(["--dataset", str(data), "--index", alias, "--rationales", str(broken)],
               es_url, tmp_path / "cache")
    assert bad.returncode == 2 and "not a rationale record" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_gold_answer_spans_are_read_and_compared_as_cmrc_compares(tmp_path):
    """``answers/<split>.jsonl`` rows become questions (rows without a usable span are left
    out, a broken row is one error naming its line); spans match without case, spaces or
    punctuation, and character F1 is CMRC's longest-common-substring F1."""
    import json

    from ragrec.eval.answers import AnswerEvalError, AnswerSpans, _char_f1, _plain

    folder = tmp_path / "answers"
    folder.mkdir()
    rows = [{"query_id": "q1", "doc_id": "d1", "answers": ["六百元", " "]},
            {"query_id": "q2", "doc_id": "d2", "answers": [""]}]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False)
                                                 for r in rows) + "\n", encoding="utf-8")
    spans = AnswerSpans(folder, {"q1": "住宿上限是多少？", "q2": "?"})
    (question,) = spans.claims("test")
    assert (question.id, question.doc, question.answers) == ("q1", "d1", ("六百元",))
    assert _plain("每晚上限为 六百元。") == "每晚上限为六百元"
    assert _plain("Hello, World!") == "helloworld"
    assert _char_f1("每晚上限为六百元。", "六百元") == 2 * (3 / 8) * 1 / (3 / 8 + 1)
    assert _char_f1("unrelated", "六百元") == 0.0
    (folder / "test.jsonl").write_text('{"query_id": "q9", "doc_id": "d", "answers": []}\n')
    with pytest.raises(AnswerEvalError, match=r"test.jsonl:1: not an answer record"):
        spans.claims("test")
