"""/chat on the real node and model server: conversations stored in Elasticsearch and read
back by their caller only, follow-ups searched as standalone queries, sentence-level
citations with exact spans, feedback exported as training pairs (documents) and as the
sentence selector's labels (the cited sentences), the LLM path grounded -
and the conversation set over the sample documents scored as a user would judge it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from servers.chat_stub import ChatStub

from api.conftest import make_client

LAPTOP = "my laptop was stolen at the airport, what do I do first?"
FOLLOW_UP = "and who do I tell about it?"
CONVERSATIONS = Path(__file__).resolve().parents[1] / "data" / "sample_conversations.jsonl"


def _cited_docs(turn: dict) -> set[str]:
    return {c["doc_id"] for c in turn["citations"]}


def _spans_are_exact(turn: dict) -> None:
    passages = {p["number"]: p for p in turn["passages"]}
    assert turn["sentences"]
    for sentence in turn["sentences"]:
        for c in sentence["citations"]:
            passage = passages[c["number"]]
            assert passage["doc_id"] == c["doc_id"] and passage["chunk_id"] == c["chunk_id"]
            assert passage["text"][c["start"]:c["end"]] == sentence["text"]


def test_a_conversation_is_started_continued_and_read_back(api, es, kb_alias):
    first = api.post("/chat", json={"question": LAPTOP})
    assert first.status_code == 200, first.text
    first = first.json()
    assert first["turn"] == 1 and first["mode"] == "extractive"
    assert first["standalone_query"] == LAPTOP
    assert "security-incidents.md" in _cited_docs(first)
    _spans_are_exact(first)

    second = api.post("/chat", json={"question": FOLLOW_UP,
                                     "conversation_id": first["conversation_id"]}).json()
    assert second["conversation_id"] == first["conversation_id"] and second["turn"] == 2
    assert "laptop" in second["standalone_query"]  # the follow-up carries the topic
    assert "security-incidents.md" in _cited_docs(second)
    _spans_are_exact(second)
    # /ask is the one-shot form of the same path: alone, the follow-up has no topic.
    alone = api.post("/ask", json={"question": FOLLOW_UP}).json()
    assert alone["standalone_query"] == FOLLOW_UP

    stored = api.get(f"/chat/{first['conversation_id']}")
    assert stored.status_code == 200
    turns = stored.json()["turns"]
    assert [t["question"] for t in turns] == [LAPTOP, FOLLOW_UP]
    assert turns[1]["standalone_query"] == second["standalone_query"]
    assert turns[1]["sentences"] == second["sentences"]
    assert turns[1]["model_version"] == "kb-minilm-v1" and "search" in turns[1]["timings_ms"]
    assert "owner" not in turns[0]
    es.indices.refresh(index=f"{kb_alias}-conversations")  # turns are read by id, unrefreshed
    raw = es.search(index=f"{kb_alias}-conversations", query={"term": {
        "conversation_id": first["conversation_id"]}})["hits"]["hits"]
    assert len(raw) == 2 and all(len(h["_source"]["owner"]) == 64 for h in raw)


def test_another_caller_cannot_read_or_continue_a_conversation(api):
    mine = api.post("/chat", json={"question": LAPTOP},
                    headers={"X-Ragrec-User": "alice"}).json()
    cid = mine["conversation_id"]
    assert api.get(f"/chat/{cid}", headers={"X-Ragrec-User": "alice"}).status_code == 200
    for other in ({"X-Ragrec-User": "bob"}, {}):
        assert api.get(f"/chat/{cid}", headers=other).status_code == 404
        refused = api.post("/chat", json={"question": FOLLOW_UP, "conversation_id": cid},
                           headers=other)
        assert refused.status_code == 404 and "no conversation" in refused.text
    assert api.get("/chat/not-a-conversation-id").status_code == 404
    assert api.get("/chat/bad%20id!").status_code == 422
    assert api.post("/chat", json={"question": "x", "conversation_id": "../../etc"}
                    ).status_code == 422


def test_turn_ids_follow_the_newest_live_turn_and_never_collide(api, es, kb_alias):
    from ragrec.answers.conversations import ConversationStore

    first = api.post("/chat", json={"question": LAPTOP}).json()
    cid = first["conversation_id"]
    assert api.post("/chat", json={"question": FOLLOW_UP,
                                   "conversation_id": cid}).json()["turn"] == 2
    # The oldest turn expires: the next question is turn 3, not a second turn 2 that would
    # overwrite the follow-up.
    es.update(index=f"{kb_alias}-conversations", id=f"{cid}:1",
              doc={"expires_at": "2020-01-01T00:00:00+00:00"})
    third = api.post("/chat", json={"question": "who pays for a new one?",
                                    "conversation_id": cid}).json()
    assert third["turn"] == 3
    turns = api.get(f"/chat/{cid}").json()["turns"]
    assert [(t["turn"], t["question"]) for t in turns] == [
        (2, FOLLOW_UP), (3, "who pays for a new one?")]
    # Two follow-ups sent at once: each takes its own id, both are kept.
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda q: api.post("/chat", json={
            "question": q, "conversation_id": cid}).json(), ["and the VPN?", "how long?"]))
    assert sorted(a["turn"] for a in answers) == [4, 5]
    assert [t["turn"] for t in api.get(f"/chat/{cid}").json()["turns"]] == [2, 3, 4, 5]
    # The store's own guarantee, whatever the timing: one id a caller.
    store = ConversationStore(es, kb_alias)
    assert [store.reserve("race", "owner", 0) for _ in range(3)] == [1, 2, 3]


def test_expired_conversations_are_gone(es, kb_alias, api_model_server):
    with make_client(es, kb_alias, api_model_server, chat_retention_days=0) as client:
        turn = client.post("/chat", json={"question": LAPTOP})
        assert turn.status_code == 200, turn.text
        cid = turn.json()["conversation_id"]
        assert client.get(f"/chat/{cid}").status_code == 404
    # Expired turns are deleted, not only hidden (on the real node, without the reindex
    # module that _delete_by_query needs).
    es.indices.refresh(index=f"{kb_alias}-conversations")
    assert es.count(index=f"{kb_alias}-conversations",
                    query={"term": {"conversation_id": cid}})["count"] == 0


def test_feedback_becomes_labelled_training_pairs(api, es, kb_alias, tmp_path):
    from ragrec.models.training_data import from_clicks
    from ragrec.recs.events import export_training_pairs

    turn = api.post("/chat", json={"question": LAPTOP}).json()
    query = turn["standalone_query"]
    common = {"user_id": "u-feedback", "query": query,
              "conversation_id": turn["conversation_id"], "turn": 1, "surface": "chat"}
    events = [{**common, "type": "helped", "doc_id": "security-incidents.md"},
              {**common, "type": "up", "doc_id": "security-incidents.md"},
              {**common, "type": "down", "doc_id": "travel-expenses.md"},
              {**common, "type": "impression", "doc_id": "vpn-access.md"}]
    stored = api.post("/events", json={"events": events})
    assert stored.status_code == 200 and stored.json()["stored"] == 4
    assert api.post("/events", json={"events": [{**common, "type": "meh", "doc_id": "x"}]}
                    ).status_code == 422
    out = tmp_path / "pairs.jsonl"
    export_training_pairs(es, kb_alias, out)
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    mine = sorted((p["doc_id"], p["label"]) for p in pairs if p["query"] == query)
    assert mine == [("security-incidents.md", 1), ("security-incidents.md", 1),
                    ("travel-expenses.md", 0)]
    documents = {"security-incidents.md": "s", "travel-expenses.md": "t", "vpn-access.md": "v"}
    training = from_clicks(out, documents)
    example = next(e for e in training.examples if e.query == query)
    assert example.positive == "security-incidents.md"
    assert example.negatives == ["travel-expenses.md"]  # the thumbs-down is a negative

    # For the sentence selector: the votes label the sentences the stored turn cited from
    # each document (helped and up from one user: one vote).
    from ragrec.feedback.chat import read_chat_labels, sentence_id
    from ragrec.feedback.sessions import query_key

    passages = {p["number"]: p for p in turn["passages"]}

    def cited(doc):
        return {sentence_id(doc, passages[c["number"]]["text"][c["start"]:c["end"]])
                for s in turn["sentences"] for c in s["citations"] if c["doc_id"] == doc}

    built = read_chat_labels(es, kb_alias)
    labels = built.questions[query_key(query)]
    assert cited("security-incidents.md") and set(labels.positives) == \
        cited("security-incidents.md")
    assert set(labels.negatives) == cited("travel-expenses.md")
    assert labels.context and not set(labels.context) & set(labels.positives)


def test_the_llm_path_condenses_follow_ups_and_grounds_citations(es, kb_alias,
                                                                 api_model_server):
    from ragrec.config import LlmSettings

    answer = ("Report it to the security hotline within one hour [1]. "
              "Then tell your manager [9]. Bring snacks for the team.")
    with ChatStub(answer=answer) as stub:
        llm = LlmSettings(url=stub.url, model=stub.model, api_key=stub.api_key)
        with make_client(es, kb_alias, api_model_server, llm=llm) as client:
            first = client.post("/chat", json={"question": LAPTOP}).json()
            streamed = client.post("/chat", json={
                "question": FOLLOW_UP, "conversation_id": first["conversation_id"],
                "stream": True})
            stored = client.get(f"/chat/{first['conversation_id']}").json()["turns"]
    assert stub.problems == []
    assert first["mode"] == "llm" and first["removed_citations"] == [9]
    assert "[9]" not in first["answer"].split("\n\n")[0]
    assert "named no retrieved passage" in first["answer"]
    supported = [s["supported"] for s in first["sentences"]]
    assert supported[0] is True and supported[-1] is False
    assert first["sentences"][0]["citations"][0]["number"] == 1
    # The citation pins the source sentence the answer sentence draws on.
    cite = first["sentences"][0]["citations"][0]
    source = next(p for p in first["passages"] if p["number"] == 1)["text"]
    assert "security hotline" in source[cite["start"]:cite["end"]]
    done = json.loads(streamed.text.strip().split("\n\n")[-1].split("data: ", 1)[1])
    assert done["standalone_query"] == f"{FOLLOW_UP} (about: {LAPTOP})"  # the condense step
    condense = [r for r in stub.requests if ChatStub.condensing(r)]
    assert len(condense) == 1 and LAPTOP in condense[0]["messages"][-1]["content"]
    # The grounded prompt carries the conversation so far.
    grounded = [r for r in stub.requests if not ChatStub.condensing(r)][-1]
    assert [m["role"] for m in grounded["messages"]] == ["system", "user", "assistant", "user"]
    assert len(stored) == 2 and stored[1]["standalone_query"] == done["standalone_query"]


def test_the_conversation_set_cites_the_expected_documents(api):
    """Every turn of the conversation set (written over the sample documents, with the
    document each turn must cite) asked through /chat, as a conversation."""
    conversations = [json.loads(line) for line in CONVERSATIONS.read_text().splitlines()
                     if line.strip()]
    assert len(conversations) >= 30
    hits = {"first": [], "follow-up": []}
    misses = []
    for conversation in conversations:
        cid = None
        for number, turn in enumerate(conversation["turns"]):
            body = {"question": turn["question"], **({"conversation_id": cid} if cid else {})}
            reply = api.post("/chat", json=body).json()
            cid = reply["conversation_id"]
            ok = turn["doc_id"] in _cited_docs(reply)
            hits["first" if number == 0 else "follow-up"].append(ok)
            if not ok:
                misses.append((conversation["id"], turn["question"], reply["standalone_query"],
                               sorted(_cited_docs(reply))))
    rates = {kind: sum(v) / len(v) for kind, v in hits.items()}
    print(f"conversation set: {len(conversations)} conversations, first turns "
          f"{rates['first']:.1%}, follow-ups {rates['follow-up']:.1%} cite the expected "
          f"document; misses: {misses}")
    assert len(hits["follow-up"]) >= 30
    assert rates["first"] >= 0.9, misses
    assert rates["follow-up"] >= 0.9, misses
