"""``ragrec eval --events ALIAS``: a model version judged by the deployment's own traffic,
no labelled queries needed. The held-out traffic of ``<ALIAS>-events`` (the queries first
seen last, as ``ragrec train --events`` holds them out) is ranked by the version on the
index, under every mode's spec and the spec the index serves, and each ranking gets the
counterfactual nDCG@10 of the clicked documents (``eval.counterfactual``) with its 95 %
interval. The per-query figures are kept in the report, so two versions ranked on the same
traffic compare pair by pair (``counterfactual.verdict``: the label-free gate's rule).

The version must encode documents as the index does (a version that trained only its query
side shares its base's document vectors, so the live index serves for it); any other needs
an index of its own first.
"""

from __future__ import annotations

import time

from elasticsearch import Elasticsearch

from ragrec.eval import counterfactual
from ragrec.eval.runner import EvalError, EvalSettings, Run, mode_specs
from ragrec.feedback import labels, sessions
from ragrec.retrieval import PinnedModels, Searcher, SearchSpec

TRAFFIC_MODES = ("served", "bm25", "dense", "hybrid", "hybrid-convex", "hybrid+rerank")


def held_out_traffic(client: Elasticsearch, events_alias: str, holdout: int
                     ) -> labels.ClickLabels:
    log = sessions.read_sessions(client, sessions.events_index(events_alias))
    built = labels.build(log, holdout, "ipw")
    if not built.held_out:
        raise EvalError(f"{sessions.events_index(events_alias)} has no held-out traffic to "
                        f"evaluate on ({log.counts.get('sessions_kept', 0)} sessions, "
                        f"{len(built.train)} queries: at least 5 queries with clicks are "
                        f"needed, the fifth first seen last held out)")
    return built


def score_traffic(searcher: Searcher, index: str, queries: dict[str, str], qrels: dict,
                  specs: dict[str, SearchSpec], depth: int, version: str | None = None
                  ) -> dict[str, dict[str, float]]:
    """Mode -> query -> counterfactual nDCG@10 of ``index`` ranked by ``searcher`` under each
    spec (the legs fetched once at ``depth``; ``version``: the encoder's, default the
    index's own)."""
    run = Run(searcher, index, queries, depth, version=version)
    return {mode: counterfactual.per_query(
        {q: [h.doc_id for h in hits] for q, hits in run.hits(spec).items()}, qrels)
        for mode, spec in specs.items()}


def evaluate_traffic(client: Elasticsearch, alias: str, events_alias: str, model_uri: str,
                     modes=TRAFFIC_MODES, settings: EvalSettings | None = None,
                     holdout: int = 150, backend: str | None = None) -> dict:
    from ragrec.embedding import encoder_for
    from ragrec.embedding.base import document_version
    from ragrec.indexing.versions import document_version_held, index_meta
    from ragrec.models.uris import load_layout

    started = time.monotonic()
    settings = settings or EvalSettings()
    traffic = held_out_traffic(client, events_alias, holdout)
    queries, qrels = traffic.qrels("held_out")
    layout = load_layout(model_uri)
    embedder = encoder_for(layout.embedder_dir, backend)
    meta = index_meta(client, alias)
    held = document_version_held(meta)
    if held != document_version(embedder):
        raise EvalError(f"index {alias} holds document vectors of {held!r}; model "
                        f"{layout.version} encodes documents as {document_version(embedder)!r}:"
                        f" build its index first (kb_reindex, or ragrec eval --dataset)")
    reranker = None
    if "hybrid+rerank" in modes:
        if layout.reranker_dir is None:
            modes = tuple(m for m in modes if m != "hybrid+rerank")
        else:
            from ragrec.models.reranker import load_cross_encoder

            reranker = load_cross_encoder(layout.reranker_dir)
    query_encoder = encoder_for(layout.query_encoder_dir, backend) \
        if layout.query_encoder_dir else None
    searcher = Searcher(client, PinnedModels(embedder, reranker, query_encoder))
    specs = {**mode_specs(settings), "served": SearchSpec.recorded(meta)}
    served = specs["served"]
    if served.reranks and reranker is None:
        specs["served"] = served.overridden(rerank=False)
    scored = score_traffic(searcher, alias, queries, qrels, {m: specs[m] for m in modes},
                           settings.depth, version=embedder.model_version)
    metrics = {mode: counterfactual.summary(scores) for mode, scores in scored.items()}
    per_query = {mode: {q: round(v, 6) for q, v in scores.items()}
                 for mode, scores in scored.items()}
    return {"events": sessions.events_index(events_alias), "index": alias,
            "model_version": layout.version, "metric": "counterfactual nDCG@10 (clicks, "
            "inverse-propensity weighted) on held-out traffic",
            "held_out_queries": len(queries), "labels": traffic.report(),
            "metrics": metrics, "specs": {m: specs[m].to_dict() for m in modes},
            "per_query": per_query, "seconds": round(time.monotonic() - started, 1)}
