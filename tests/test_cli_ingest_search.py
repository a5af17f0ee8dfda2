"""`ragrec ingest` and `ragrec search` as an operator runs them."""

from __future__ import annotations

import json
import subprocess

from conftest import ROOT

SUMMARY_KEYS = {"docs_seen", "docs_new", "docs_changed", "docs_unchanged", "docs_deleted",
                "docs_quarantined", "chunks_indexed", "seconds"}


def ragrec(args, env):
    return subprocess.run(["ragrec", *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def test_ingest_then_search_in_every_mode(tmp_path, project_env, es_url, index_name,
                                          cleanup_alias):
    cleanup_alias(index_name)
    env = {**project_env, "ES_URL": es_url}
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vpn.md").write_text("# VPN\n\nThe VPN drops at airports: use the TCP gateway.\n")
    (docs / "leave.md").write_text("# Leave\n\nParental leave lasts twenty weeks, paid.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")

    first = ragrec(["ingest", str(docs), "--index", index_name, "--json"], env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert SUMMARY_KEYS <= summary.keys()
    assert (summary["docs_seen"], summary["docs_new"], summary["docs_quarantined"]) == (3, 3, 1)
    assert summary["quarantined"][0]["doc_id"] == "broken.pdf"
    assert "ingest " in first.stderr and "3/3 docs" in first.stderr  # progress output

    again = json.loads(ragrec(["ingest", f"file://{docs}", "--index", index_name, "--json",
                               "--quiet"], env).stdout)
    assert (again["docs_unchanged"], again["chunks_indexed"]) == (3, 0)

    for mode in ("bm25", "dense", "hybrid"):
        result = ragrec(["search", "my connection keeps dropping at the airport",
                         "--index", index_name, "--mode", mode, "-k", "2", "--json"], env)
        assert result.returncode == 0, result.stderr
        hits = json.loads(result.stdout)
        assert hits[0]["doc_id"] == "vpn.md", (mode, hits)


def test_errors_are_one_clear_line(tmp_path, project_env, es_url):
    env = {**project_env, "ES_URL": es_url}
    missing = ragrec(["ingest", str(tmp_path / "nowhere"), "--index", "x"], env)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    scheme = ragrec(["ingest", "s3://bucket/x", "--index", "x"], env)
    assert scheme.returncode == 2 and "use file:// or oss://" in scheme.stderr
