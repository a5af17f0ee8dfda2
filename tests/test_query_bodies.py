"""Ranking query bodies are built in one place: ``ragrec.retrieval.queries``."""

from __future__ import annotations

from conftest import ROOT

PACKAGE = ROOT / "include" / "ragrec"
# The keys only a BM25 or kNN body spells out, as string literals.
MARKERS = tuple(f"{quote}{key}{quote}" for key in ("multi_match", "query_vector",
                                                   "num_candidates") for quote in "\"'")


def test_no_module_outside_retrieval_builds_a_bm25_or_knn_body():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(PACKAGE / "retrieval"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(marker in line for marker in MARKERS):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, ("build BM25/kNN bodies with ragrec.retrieval.queries:\n"
                           + "\n".join(offenders))


def test_the_bodies_carry_the_filters_as_filters():
    from ragrec.retrieval.queries import bm25_query, excluding_documents, knn_query

    clause = {"term": {"page": 3}}
    assert bm25_query("vpn", [clause])["bool"]["filter"] == [clause]
    knn = knn_query([0.5, 0.25], 7, filters=excluding_documents({"b.md", "a.md"}))
    assert (knn["k"], knn["num_candidates"]) == (7, 100)
    assert knn["filter"]["bool"]["must_not"]["terms"]["doc_id"] == ["a.md", "b.md"]
    assert knn_query([1.0], 80)["num_candidates"] == 160
