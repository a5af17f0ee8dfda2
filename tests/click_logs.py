"""Search traffic with clicks, logged the way the API logs it, for the tests that learn
from behaviour: every query of a BEIR set searched on an index by the real searcher, a
share of answers explored, clicks drawn by a position-based model."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

EXAMINATION = (0.68, 0.61, 0.48, 0.34, 0.28)


def log_traffic(es, alias, events_alias, dataset, clicked_doc, sessions=8, seed=5):
    """Every query of the set searched ``sessions`` times on ``alias`` (dense, top 5, a fifth
    of the answers explored), clicked by a position-based model on ``clicked_doc(qid)``,
    the query first seen on day ``n`` (its place in the set) and seen again the next days;
    the events land in ``events_alias``-events."""
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.feedback.exploration import Explorer, apply
    from ragrec.recs import events as event_log
    from ragrec.retrieval import PinnedModels, Searcher, SearchSpec

    rng = random.Random(seed)
    explorer = Explorer(0.2, random.Random(seed + 1))
    searcher = Searcher(es, PinnedModels(encoder_for(base_model_dir())))
    queries = dataset.queries()
    rows, start = [], datetime(2026, 11, 1, 9, tzinfo=UTC)
    for day, qid in enumerate(sorted(queries)):
        ranked = [h.doc_id for h in searcher.search(alias, queries[qid], SearchSpec("dense"),
                                                    k=5).hits]
        for session in range(sessions):
            shown = apply(ranked, explorer.draw(len(ranked)))
            when = start + timedelta(days=day + session // 3, minutes=session)
            common = {"user_id": f"user-{session}", "query": queries[qid], "ts": when,
                      "trace_id": f"{events_alias}-{qid}-{session}", "surface": "search"}
            for position, doc in enumerate(shown):
                rows.append({**common, "doc_id": doc, "type": "impression",
                             "position": position})
                attractive = 1.0 if doc.removesuffix(".md") == clicked_doc(qid) else 0.05
                if rng.random() < EXAMINATION[position] * attractive:
                    rows.append({**common, "doc_id": doc, "type": "click",
                                 "position": position})
    event_log.log_events(es, events_alias, event_log.normalise_events(rows))


def log_chat_feedback(es, alias, dataset, helpful_doc):
    """One stored chat turn per query of the set, stored as ``/chat`` stores turns: its
    extractive answer cites the sentence of ``helpful_doc(qid)`` and of another topic's
    document, and the asker's votes, logged as ``/events`` logs them, say the first
    ``helped`` and the second did not (``down``)."""
    from ragrec.answers.conversations import ConversationStore
    from ragrec.recs import events as event_log

    store = ConversationStore(es, alias)
    corpus = {d["_id"]: d for d in dataset.corpus()}
    ids = sorted(corpus)
    queries, rows = dataset.queries(), []
    for qid in sorted(queries):
        good = helpful_doc(qid)
        bad = ids[(ids.index(good) + 4) % len(ids)]
        passages = [{"number": n, "doc_id": f"{d}.md", "title": corpus[d]["title"],
                     "text": corpus[d]["text"], "chunk_id": f"{d}.md#0", "support": 0.5}
                    for n, d in enumerate((good, bad), start=1)]
        sentences = [{"text": p["text"], "citations": [
            {"number": p["number"], "doc_id": p["doc_id"], "chunk_id": p["chunk_id"],
             "start": 0, "end": len(p["text"])}]} for p in passages]
        store.append(f"chat-{qid}", "asker", 1, {
            "question": queries[qid], "standalone_query": queries[qid], "mode": "extractive",
            "answer": " ".join(s["text"] for s in sentences), "model_version": "base",
            "sentences": sentences, "citations": passages, "passages": passages,
            "timings_ms": {}})
        common = {"user_id": f"asker-{qid}", "query": queries[qid], "surface": "chat",
                  "conversation_id": f"chat-{qid}", "turn": 1}
        rows += [{**common, "type": "helped", "doc_id": f"{good}.md"},
                 {**common, "type": "down", "doc_id": f"{bad}.md"}]
    event_log.log_events(es, alias, event_log.normalise_events(rows))
