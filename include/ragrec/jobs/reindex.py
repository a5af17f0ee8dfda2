"""Zero-downtime rebuilds behind an alias, with a retrieval gate (``kb_reindex``).

1. ``build``: a new physical version from the whole source with the chosen encoder
   (vectors of unchanged chunks reused when the model is the same); the alias is untouched.
2. ``gate``: the golden set on the candidate vs the live index, both ranked under the search
   spec that will be served (rerank included); refused when nDCG@10 drops more than
   ``margin`` below the live one. Without a golden set, ``traffic_gate`` judges by the
   alias's held-out traffic instead (counterfactual nDCG@10 of the clicked documents, the
   same queries ranked by both versions); where both exist the golden set decides and the
   traffic's verdict is reported beside it. Scores are recorded in each version's ``_meta``, so the
   live baseline is measured once per golden set and spec; the spec a candidate passed with
   is recorded on it (``search_spec``) and is what the API serves once it is live.
3. ``swap``: one atomic alias action, older versions beyond ``keep`` deleted, then a
   catch-up sync of changes written to the old version while the new one was built.
4. ``discard``: a refused or failed candidate is deleted; the live version never is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from elasticsearch import Elasticsearch

from ragrec.eval.golden import GoldenScore, evaluate_golden, golden_digest
from ragrec.indexing import versions
from ragrec.retrieval import EncoderMismatch, NoReranker, Searcher, SearchSpec
from ragrec.sync import IngestOptions, Ingestor

log = logging.getLogger(__name__)


class GateRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class GateSettings:
    golden_dir: Path | None
    spec: SearchSpec = SearchSpec()
    margin: float = 0.02
    split: str = "test"


def build(client: Elasticsearch, embedder, tokenizer, source, alias: str,
          validator=None) -> dict:
    options = IngestOptions(full=True, swap_alias=False, show_progress=False)
    summary = Ingestor(client, embedder, tokenizer, options, validator).ingest(source, alias)
    result = summary.to_dict()
    result.pop("quarantined", None)
    return result


def recorded_score(client: Elasticsearch, index: str, settings: GateSettings) -> dict | None:
    """The golden score recorded on ``index`` for this golden set and spec, if any."""
    digest = golden_digest(settings.golden_dir, settings.split)
    golden = versions.index_meta(client, index).get("golden") or {}
    if golden.get("golden_sha256") == digest \
            and golden.get("spec") == settings.spec.to_dict():
        return golden
    return None


def score(client: Elasticsearch, index: str, models, settings: GateSettings) -> dict:
    """The golden score of one version under the gate's spec (recorded in its ``_meta``;
    measured with that version's own models if missing)."""
    recorded = recorded_score(client, index, settings)
    if recorded is not None:
        return recorded
    try:
        result: GoldenScore = evaluate_golden(Searcher(client, models), index,
                                              settings.golden_dir, settings.spec,
                                              settings.split)
    except (EncoderMismatch, NoReranker) as exc:
        raise GateRefused(f"{index} cannot be scored under {settings.spec.label}: {exc}") \
            from exc
    versions.update_meta(client, index, golden=result.to_dict())
    return result.to_dict()


def record_spec(client: Elasticsearch, index: str, spec: SearchSpec) -> None:
    """Records the spec ``index`` was gated with: what the API serves once it is live."""
    versions.update_meta(client, index, search_spec=spec.to_dict())


def gate(candidate: dict, live: dict | None, margin: float) -> dict:
    """Pass/fail of a candidate's golden score against the live one (None: no live index,
    or no comparable baseline, which passes and says so)."""
    if live is None:
        return {"passed": True, "reason": "no live baseline", "candidate": candidate,
                "live": None, "margin": margin}
    drop = round(live["ndcg_at_10"] - candidate["ndcg_at_10"], 4)
    passed = drop <= margin
    reason = (f"nDCG@10 {candidate['ndcg_at_10']:.4f} vs live {live['ndcg_at_10']:.4f} "
              f"(drop {drop:+.4f}, allowed {margin:.4f})")
    return {"passed": passed, "reason": reason, "candidate": candidate, "live": live,
            "margin": margin}


def traffic_gate(client: Elasticsearch, models, candidate: str, live: str, alias: str,
                 spec: SearchSpec, margin: float = 0.02, holdout: int = 150) -> dict:
    """Pass/fail of ``candidate`` against ``live`` on the held-out traffic of ``alias``'s
    events, both ranked with their own models under ``spec`` and by their dense leg alone:
    refused when the candidate's counterfactual nDCG@10 is more than ``margin`` below the
    live one's on the same queries in both (``counterfactual.verdict`` says why both;
    ``EvalError`` when the log holds no held-out traffic)."""
    from ragrec.eval.counterfactual import summary, verdict
    from ragrec.eval.traffic import held_out_traffic, score_traffic

    queries, qrels = held_out_traffic(client, alias, holdout).qrels("held_out")
    searcher = Searcher(client, models)
    specs = {"served": spec, "dense": SearchSpec("dense", depth=spec.depth)}
    try:
        scores = {name: score_traffic(searcher, index, queries, qrels, specs, spec.depth)
                  for name, index in (("candidate", candidate), ("live", live))}
    except (EncoderMismatch, NoReranker) as exc:
        raise GateRefused(f"{candidate} cannot be scored under {spec.label}: {exc}") from exc
    decided = verdict(scores["candidate"], scores["live"], margin)
    ours, theirs = summary(scores["candidate"]["served"]), summary(scores["live"]["served"])
    gain = decided["gains"]["served"]
    reason = (f"counterfactual nDCG@10 on {gain['queries']} held-out queries of traffic "
              f"{ours['ndcg@10']:.4f} vs live {theirs['ndcg@10']:.4f} (gain "
              f"{gain['gain']:+.4f}, 95% {gain['ci95']}; dense alone "
              f"{decided['gains']['dense']['gain']:+.4f}; refused only when both drop more "
              f"than {margin:.4f})")
    return {"passed": decided["passed"], "reason": reason, "candidate": ours, "live": theirs,
            "gain": gain, "gains": decided["gains"], "margin": margin,
            "judged_by": "traffic"}


def swap(client: Elasticsearch, alias: str, candidate: str, keep: int) -> dict:
    if candidate not in versions.list_versions(client, alias):
        raise versions.IndexVersionError(f"{candidate} is not a version of {alias}")
    previous = versions.point_alias(client, alias, candidate)
    pruned = versions.prune_versions(client, alias, keep)
    log.info("%s: %s -> %s (pruned %s)", alias, previous, candidate, pruned)
    return {"alias": alias, "previous": previous, "live": candidate, "pruned": pruned}


def discard(client: Elasticsearch, alias: str, candidate: str) -> bool:
    if candidate == versions.current_version(client, alias):
        return False
    client.indices.delete(index=candidate, ignore_unavailable=True)
    return True


def catch_up(client: Elasticsearch, embedder, tokenizer, source, alias: str) -> dict:
    summary = Ingestor(client, embedder, tokenizer,
                       IngestOptions(show_progress=False)).ingest(source, alias).to_dict()
    summary.pop("quarantined", None)
    return summary
