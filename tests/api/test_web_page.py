"""The web page in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser
download) against ``ragrec serve-api`` running as a real server: a person types a question,
sees the answer with numbered citations, and a related-documents panel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from api.conftest import API_TOKEN, MODEL_TOKEN
from conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="needs Debian's chromium (.ci/run installs it)")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def served_api(es_url, kb_alias, api_model_server):
    from ragrec.dev.es_node.node import free_port

    port = free_port()
    env = {**os.environ, "ES_URL": es_url, "RAGREC_API_INDEX": kb_alias,
           "RAGREC_EMBED_URL": api_model_server.predict_url, "RAGREC_EMBED_TOKEN": MODEL_TOKEN,
           "RAGREC_API_TOKEN": API_TOKEN}
    env.pop("RAGREC_LLM_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "ragrec.cli", "serve-api", "--port",
                                str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"serve-api exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("serve-api did not come up in 90 s")
        time.sleep(0.3)
    yield base
    process.terminate()
    process.wait(timeout=20)


def test_a_conversation_in_the_page(served_api, es, kb_alias, tmp_path):
    """A question and a follow-up as a thread: the second answer cites the right document,
    a citation opens its passage with the cited sentence highlighted, a thumbs-up is
    logged, related documents are listed, and a wrong token is shown, not swallowed."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(served_api + "/")
            expect(page.locator("#model")).to_contain_text("kb-minilm-v1")
            expect(page.locator("#token-row")).to_be_visible()  # the API wants a token
            page.fill("#token", API_TOKEN)
            page.fill("#question", "my laptop was stolen at the airport, what do I do first?")
            page.click("#ask")
            turns = page.locator("#thread .turn")
            expect(turns).to_have_count(1, timeout=60_000)
            expect(page.locator("#status")).to_contain_text("Answered (extractive)",
                                                            timeout=60_000)
            page.fill("#question", "and who do I tell about it?")
            page.click("#ask")
            expect(turns).to_have_count(2, timeout=60_000)
            second = turns.nth(1)
            expect(second.locator(".feedback")).to_be_visible(timeout=60_000)
            cited = [second.locator(".citations li").nth(i).get_attribute("data-doc-id")
                     for i in range(second.locator(".citations li").count())]
            assert "security-incidents.md" in cited
            assert "[1]" in second.locator(".answer").inner_text()

            # A citation opens the passage with the cited sentence highlighted.
            link = second.locator(".answer .cite").first
            sentence = second.locator(".answer .sentence").first.inner_text()
            link.click()
            expect(page.locator("#source-panel")).to_be_visible()
            expect(page.locator("#source mark")).to_have_text(sentence.strip())

            second.locator(".feedback .up").click()
            expect(page.locator("#status")).to_contain_text("Thanks", timeout=30_000)
            second.locator(".helped").first.click()
            expect(second.locator(".helped").first).to_have_attribute("aria-pressed", "true")
            related = page.locator("#related li")
            expect(related.first).to_be_visible(timeout=30_000)
            page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)

            # A wrong token is shown to the person, not swallowed.
            page.fill("#token", "wrong")
            page.fill("#question", "and then?")
            page.click("#ask")
            expect(page.locator("#status")).to_contain_text("token", timeout=30_000)
            expect(turns).to_have_count(2)
        finally:
            browser.close()
    es.indices.refresh(index=f"{kb_alias}-events")
    logged = es.search(index=f"{kb_alias}-events", query={"bool": {"filter": [
        {"terms": {"type": ["up", "helped"]}}, {"term": {"surface": "chat"}},
        {"prefix": {"user_id": "web-"}}]}},  # the page's own per-browser user id
        size=50)["hits"]["hits"]
    kinds = {h["_source"]["type"] for h in logged}
    assert kinds == {"up", "helped"}
    assert all(h["_source"]["conversation_id"] and h["_source"]["turn"] == 2 for h in logged)
    assert len({h["_source"]["trace_id"] for h in logged}) == 1  # the turn's own trace id
    # The related documents the page showed came back as impressions of that response.
    shown = [h["_source"] for h in es.search(index=f"{kb_alias}-events", query={"bool": {
        "filter": [{"term": {"type": "impression"}}, {"term": {"surface": "recommend_item"}},
                   {"prefix": {"user_id": "web-"}}]}}, size=50)["hits"]["hits"]]
    assert shown and {e["scene_id"] for e in shown} == {"related"}
    assert all(e["trace_id"] for e in shown)
    assert {0, 1} <= {e["position"] for e in shown}
