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
    from ragrec.api import events as event_log
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.feedback.exploration import Explorer, apply
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
