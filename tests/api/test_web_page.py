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


def test_a_question_gets_a_cited_answer_and_related_documents(served_api, tmp_path):
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
            page.fill("#question", "the VPN keeps disconnecting at the airport")
            page.click("#ask")
            expect(page.locator("#status")).to_contain_text("Answered (extractive)",
                                                            timeout=60_000)
            answer = page.locator("#answer").inner_text()
            assert "[1]" in answer
            citations = page.locator("#citations li")
            assert citations.count() >= 1
            cited = citations.first.get_attribute("data-doc-id")
            assert cited == "vpn-access.md"
            related = page.locator("#related li")
            expect(related.first).to_be_visible(timeout=30_000)
            related_ids = [related.nth(i).get_attribute("data-doc-id")
                           for i in range(related.count())]
            assert related_ids and cited not in related_ids
            page.screenshot(path=str(tmp_path / "ask.png"), full_page=True)

            # A wrong token is shown to the person, not swallowed.
            page.fill("#token", "wrong")
            page.click("#ask")
            expect(page.locator("#status")).to_contain_text("token", timeout=30_000)
        finally:
            browser.close()
