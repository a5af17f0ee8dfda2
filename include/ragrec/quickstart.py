"""The embedded-default demo: the sample documents shipped with ragrec go through the real
ingestion engine (parse, chunk, embed in process, bulk-index) into Elasticsearch, then a few
questions are answered with hybrid search."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ragrec.retrieval import Hit

DEMO_QUERIES = (
    "how do I get reimbursed for a hotel",
    "the VPN keeps disconnecting at the airport",
    "my laptop was stolen, what should I do",
)


def samples_dir() -> Path:
    return Path(str(resources.files("ragrec") / "samples"))


def format_hits(query: str, hits: list[Hit]) -> str:
    lines = [f"Query: {query}"]
    if not hits:
        lines.append("  (no hits)")
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.title} ({hit.doc_id})" if hit.title else hit.doc_id
        lines.append(f"  {rank}. {hit.score:.4f}  {where}")
        lines.append(f"        {' '.join(hit.text.split())[:160]}")
    return "\n".join(lines)
