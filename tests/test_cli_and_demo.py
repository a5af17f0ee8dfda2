"""The README's main job and the `ragrec es` commands, run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import httpx
import pytest

from conftest import ROOT, fresh_cache


def _drop_alias(es, alias):
    for name in es.indices.get(index=f"{alias}--*", allow_no_indices=True,
                               expand_wildcards="all"):
        es.indices.delete(index=name)


def _run(args, env, timeout=300):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


@pytest.mark.scheduler
def test_demo_prints_real_hits_from_the_local_node(project_env, local_node_name, es):
    if local_node_name is None:
        pytest.skip("tests run against ES_URL; the external case is covered below")
    env = {**project_env, "RAGREC_ES_NODE": local_node_name}
    env.pop("ES_URL", None)
    index = f"ragrec-test-demo-{uuid.uuid4().hex[:8]}"
    try:
        result = _run(["ragrec", "demo", "--index", index,
                       "--query", "VPN drops at the airport"], env)
        assert result.returncode == 0, result.stderr
        assert "Query: VPN drops at the airport" in result.stdout
        first_hit = result.stdout.splitlines()[1]
        assert "(vpn-access.md)" in first_hit
        assert "ingested 6 sample documents (6 new" in result.stderr
        assert f"ragrec serve-api --index {index}`, then open http://127.0.0.1:8080/" \
            in result.stderr  # how to reach the page over what the demo built
        assert es.count(index=index)["count"] == 6  # each short sample is one chunk
        # Airflow as a user meets it: the DAGs are serialised, so the CLI lists them.
        listed = _run([sys.executable, "-m", "airflow", "dags", "list", "-o", "json"], env)
        rows = next(line for line in listed.stdout.splitlines() if line.startswith("[{"))
        assert "kb_ingest" in {d["dag_id"] for d in json.loads(rows)}
        # A re-run finds nothing to do and duplicates nothing; with --ui the Airflow UI
        # then shows the DAGs, kb_ingest's Params form and both runs.
        rerun = _run(["ragrec", "demo", "--index", index, "--ui"], env)
        assert rerun.returncode == 0 and "(0 new, 6 unchanged)" in rerun.stderr, rerun.stderr
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == 6
        url = re.search(r"the Airflow UI .* is at (http://127\.0\.0\.1:\d+)",
                        rerun.stderr).group(1)
        assert httpx.get(url, timeout=30).status_code == 200  # the UI's page
        details = httpx.get(f"{url}/api/v2/dags/kb_ingest/details", timeout=30).json()
        assert {"source", "index", "batch_size", "all_documents", "language"} \
            <= set(details["params"])
        runs = httpx.get(f"{url}/api/v2/dags/kb_ingest/dagRuns", timeout=30).json()
        assert runs["total_entries"] >= 2
        assert "stopped the Airflow UI" in _run(["ragrec", "demo", "--stop-ui"], env).stderr
    finally:
        _run(["ragrec", "demo", "--stop-ui"], env)
        _drop_alias(es, index)


@pytest.mark.scheduler
def test_the_chinese_demo_runs_the_dag_into_a_chinese_index(project_env, es_url, es):
    """``ragrec demo --language zh`` with the Chinese base: the kb_ingest DAG (its language
    param) builds a Chinese index of the Chinese samples, and each demo question's first hit
    is the sample that answers it."""
    from conftest import catalogue_base
    from ragrec.indexing import versions

    catalogue_base("bge-small-zh-v15-q")
    env = {**project_env, "ES_URL": es_url, "RAGREC_BASE_MODEL": "bge-small-zh-v15-q"}
    index = f"ragrec-test-demo-zh-{uuid.uuid4().hex[:8]}"
    try:
        result = _run(["ragrec", "demo", "--language", "zh", "--index", index, "-k", "1"],
                      env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "ingested 3 sample documents (3 new" in result.stderr, result.stderr
        firsts = dict(re.findall(r"Query: (.+)\n  1\. [\d.]+  .*\((\S+\.md)\)",
                                 result.stdout))
        assert firsts == {"出差住酒店的费用怎么报销？": "travel-expenses.md",
                          "在机场连不上公司的VPN怎么办？": "remote-access.md",
                          "笔记本电脑被偷了应该怎么做？": "security-incidents.md"}
        meta = versions.index_meta(es, versions.current_version(es, index))
        assert meta["language"] == "zh" and meta["model_version"] == "bge-small-zh-v15-q-base"
    finally:
        _drop_alias(es, index)


def test_es_url_switches_the_demo_script_to_an_external_cluster(project_env, es_url, es,
                                                                  tmp_path):
    """`scripts/demo` (the README's command) with ES_URL never starts a node of its own."""
    env = {**project_env, "ES_URL": es_url, "RAGREC_CACHE_DIR": fresh_cache(tmp_path / "cache")}
    index = f"ragrec-test-external-{uuid.uuid4().hex[:8]}"
    try:
        result = _run([str(ROOT / "scripts" / "demo"), "--index", index], env)
        assert result.returncode == 0, result.stderr
        assert "ES_URL is set: using the external cluster" in result.stderr
        assert "Query: how do I get reimbursed for a hotel" in result.stdout
        assert "(travel-expenses.md)" in result.stdout.split("Query:")[1].splitlines()[1]
        assert es.count(index=index)["count"] == 6
        assert not (tmp_path / "cache" / "nodes").exists()
    finally:
        _drop_alias(es, index)


def test_es_url_switches_the_test_command_to_an_external_cluster(project_env, es_url,
                                                                   tmp_path):
    env = {**project_env, "ES_URL": es_url, "RAGREC_CACHE_DIR": fresh_cache(tmp_path / "cache")}
    result = _run(
        [str(ROOT / "scripts" / "test"), "-q", "-p", "no:cacheprovider",
         "tests/test_elasticsearch_node.py"],
        env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"external cluster at {es_url}" in result.stdout
    assert "passed" in result.stdout.splitlines()[-1]
    assert not (tmp_path / "cache" / "nodes").exists()


def test_es_status_reports_the_running_node(project_env, local_node_name, es_url):
    if local_node_name is None:
        import pytest

        pytest.skip("tests run against ES_URL")
    env = {**project_env, "RAGREC_ES_NODE": local_node_name}
    env.pop("ES_URL", None)
    result = _run(["ragrec", "es", "status"], env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["running"] is True
    assert status["url"] == es_url
    assert status["version"].startswith("8.")
    assert status["health"] in ("green", "yellow")


def test_demo_without_any_elasticsearch_fails_with_a_clear_message(project_env, tmp_path):
    env = {**project_env, "RAGREC_CACHE_DIR": str(tmp_path), "RAGREC_ES_NODE": "absent"}
    env.pop("ES_URL", None)
    result = _run(["ragrec", "demo"], env)
    assert result.returncode == 2
    assert "ragrec es start" in result.stderr and "ES_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []  # nothing was fetched or started
