"""The nightly checks of a live index (``quality_monitor``) and the alert they produce.

* chunks: the chunk suite over every chunk behind the alias (scanned, vectors included);
* documents: the index suite (count vs source minus quarantine, uniqueness, freshness);
* golden: the golden query set on the live index vs the score recorded when it went live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from elasticsearch import Elasticsearch

from ragrec.indexing import versions
from ragrec.quality.alerts import Alert
from ragrec.quality.expectations import ChunkRules, chunk_suite
from ragrec.quality.runner import QualityRunner


def check_chunks(client: Elasticsearch, alias: str, runner: QualityRunner,
                 max_model_tokens: int) -> dict:
    from ragrec.quality.frames import index_frames

    meta = versions.index_meta(client, alias)
    rules = ChunkRules(dims=int(meta.get("dims", 0)), model_version=meta.get("model_version", ""),
                       max_tokens=int(meta.get("chunk_size", 512)),
                       max_model_tokens=max_model_tokens)
    chunks, _ = index_frames(client, alias)
    return runner.validate(chunks, chunk_suite(f"{alias}-chunks", rules)).to_dict()


def check_documents(client: Elasticsearch, source, alias: str, runner: QualityRunner,
                    max_age_hours: float) -> dict:
    from ragrec.quality.index_check import validate_index

    fresh_after = datetime.now(UTC) - timedelta(hours=max_age_hours) if max_age_hours else None
    return validate_index(client, source, alias, runner, fresh_after=fresh_after).to_dict()


def check_golden(client: Elasticsearch, alias: str, models, golden_dir: Path, spec,
                 margin: float) -> dict:
    """Live golden score under ``spec`` vs the one recorded when this version went live
    under the same spec (or, without one, only reported)."""
    from ragrec.eval.golden import evaluate_golden
    from ragrec.retrieval import Searcher

    live = versions.current_version(client, alias)
    recorded = versions.index_meta(client, live).get("golden") or {}
    now = evaluate_golden(Searcher(client, models), live, golden_dir, spec).to_dict()
    comparable = (recorded.get("golden_sha256") == now["golden_sha256"]
                  and recorded.get("spec") == now["spec"])
    drop = round(recorded["ndcg_at_10"] - now["ndcg_at_10"], 4) if comparable else None
    success = drop is None or drop <= margin
    return {"suite": f"{alias}-golden", "success": success, "score": now,
            "recorded": recorded if comparable else None, "drop": drop, "margin": margin}


def quality_alert(alias: str, results: dict[str, dict]) -> Alert | None:
    """One alert naming every failing expectation and where the Data Docs are; None when
    everything passed."""
    lines, docs = [], None
    for name, result in results.items():
        if result is None or result.get("success", True):
            continue
        if "failures" in result:
            docs = result.get("docs_path") or docs
            lines.append(f"{name}: {len(result['failures'])} of {result['evaluated']} "
                         f"expectations failed ({result['rows']} rows)")
            for f in result["failures"]:
                detail = (f"{f['unexpected_count']} unexpected" if f["unexpected_count"]
                          is not None else f"observed {f['observed']}")
                where = f" on {f['column']}" if f["column"] else ""
                lines.append(f"  - {f['expectation']}{where}: {detail}")
        else:
            lines.append(f"{name}: golden nDCG@10 {result['score']['ndcg_at_10']:.4f}, "
                         f"{result['drop']:+.4f} below the {result['recorded']['ndcg_at_10']:.4f}"
                         f" recorded at go-live (allowed {result['margin']:.4f})")
    if not lines:
        return None
    fields = {"alias": alias}
    if docs:
        fields["data_docs"] = docs
    return Alert(f"data quality failed on {alias}", "\n".join(lines), "error", fields)
