"""/ask: extractive answers with citations when no LLM is configured, a grounded prompt to an
OpenAI-compatible chat endpoint (a local stub that checks the request) streamed back when one
is, and a refusal when retrieval finds nothing that supports an answer."""

from __future__ import annotations

import json
import re

from servers.chat_stub import ChatStub

from api.conftest import make_client

HOTEL = "how do I get reimbursed for a hotel"


def _sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_an_extractive_answer_cites_the_passages_it_quotes(api):
    response = api.post("/ask", json={"question": HOTEL})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "extractive"
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])}
    assert numbers and numbers == {c["number"] for c in body["citations"]}
    cited_docs = {c["doc_id"] for c in body["citations"]}
    assert "travel-expenses.md" in cited_docs
    passages = {p["number"]: p["text"] for p in body["passages"]}
    # Every quoted sentence is really in the passage it cites.
    for sentence, number in re.findall(r"(.+?) \[(\d+)\]\s*", body["answer"]):
        assert " ".join(sentence.split()) in " ".join(passages[int(number)].split())


def test_nothing_relevant_means_no_answer(api):
    body = api.post("/ask", json={"question": "zqxj vlorp the quux of frobnitz"}).json()
    assert body["mode"] == "refused" and body["citations"] == []
    assert body["support"] < body["min_support"]
    assert "cannot answer" in body["answer"]


def test_the_llm_gets_a_grounded_prompt_and_its_stream_is_relayed(es, kb_alias,
                                                                  api_model_server):
    from ragrec.config import LlmSettings

    with ChatStub() as stub:
        llm = LlmSettings(url=stub.url, model=stub.model, api_key=stub.api_key)
        with make_client(es, kb_alias, api_model_server, llm=llm) as client:
            streamed = client.post("/ask", json={"question": HOTEL, "stream": True, "k": 3})
            whole = client.post("/ask", json={"question": HOTEL, "k": 3})
    assert stub.problems == []
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = _sse(streamed.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "passages" and kinds[-1] == "done" and kinds.count("delta") >= 1
    passages = events[0][1]
    done = events[-1][1]
    assert done["mode"] == "llm"
    assert "".join(d["text"] for k, d in events if k == "delta") == done["answer"]
    assert {c["number"] for c in done["citations"]} == {p["number"] for p in passages}
    request = stub.requests[0]
    assert request["stream"] is True and request["messages"][-1]["content"] == HOTEL
    system = request["messages"][0]["content"]
    for passage in passages:  # the prompt carries each passage under its number
        assert f"[{passage['number']}] " in system
        assert passage["text"][:80] in system
    assert whole.json()["mode"] == "llm" and whole.json()["citations"]


def test_an_llm_failure_is_a_clear_502(es, kb_alias, api_model_server):
    from ragrec.config import LlmSettings

    with ChatStub(fail_with=503) as stub:
        llm = LlmSettings(url=stub.url, model=stub.model, api_key=stub.api_key)
        with make_client(es, kb_alias, api_model_server, llm=llm) as client:
            response = client.post("/ask", json={"question": HOTEL})
    assert response.status_code == 502
    assert "503" in response.json()["error"]["message"]


def test_bad_questions_are_4xx(api):
    assert api.post("/ask", json={}).status_code == 422
    assert api.post("/ask", json={"question": "x", "k": 99}).status_code == 422
    assert api.post("/ask", json={"question": ["a"]}).status_code == 422
