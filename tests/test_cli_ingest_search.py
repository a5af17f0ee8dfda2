"""`ragrec ingest` and `ragrec search` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess

from servers.tcp_proxy import TcpProxy

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
        answer = json.loads(result.stdout)
        assert answer["spec"]["mode"] == mode and answer["model_version"]
        assert answer["hits"][0]["doc_id"] == "vpn.md", (mode, answer)


def test_errors_are_one_clear_line(tmp_path, project_env, es_url):
    env = {**project_env, "ES_URL": es_url}
    missing = ragrec(["ingest", str(tmp_path / "nowhere"), "--index", "x"], env)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    scheme = ragrec(["ingest", "s3://bucket/x", "--index", "x"], env)
    assert scheme.returncode == 2 and "use file:// or oss://" in scheme.stderr


def test_a_file_name_that_is_not_utf8_is_indexed_under_a_stable_id(tmp_path, project_env,
                                                                    es_url, index_name,
                                                                    cleanup_alias):
    cleanup_alias(index_name)
    env = {**project_env, "ES_URL": es_url}
    docs = tmp_path / "m"
    docs.mkdir()
    (docs / "ok.md").write_text("# ok\n")
    with open(os.path.join(os.fsencode(docs), b"caf\xe9.md"), "wb") as handle:
        handle.write(b"# x\n\nespresso\n")
    for _ in range(2):
        run = ragrec(["ingest", str(docs), "--index", index_name, "--json"], env)
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert (summary["docs_seen"], summary["docs_quarantined"]) == (2, 0)
    assert summary["docs_unchanged"] == 2
    hits = json.loads(ragrec(["search", "espresso", "--index", index_name, "--mode", "bm25",
                              "--json"], env).stdout)["hits"]
    assert [h["doc_id"] for h in hits] == ["caf\\xe9.md"]


def test_elasticsearch_going_down_mid_ingest_prints_the_summary_and_one_line(
        tmp_path, project_env, es_url, index_name, cleanup_alias):
    cleanup_alias(index_name)
    host, port = es_url.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port), outage_on=b"/_bulk", outage_seconds=None)
    try:
        env = {**project_env, "ES_URL": f"http://127.0.0.1:{proxy.port}"}
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "vpn.md").write_text("# VPN\n\nThe VPN drops at airports.\n")
        run = ragrec(["ingest", str(docs), "--index", index_name, "--json", "--quiet"], env)
    finally:
        proxy.close()
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    error_lines = [line for line in run.stderr.splitlines() if line.startswith("ragrec: error")]
    assert len(error_lines) == 1 and "Elasticsearch is unreachable" in error_lines[0]
    assert "run the same command again" in error_lines[0]
    summary = json.loads(run.stdout)
    assert summary["status"] == "failed" and summary["docs_seen"] == 1
    assert summary["chunks_indexed"] == 0 and "unreachable" in summary["error"]
