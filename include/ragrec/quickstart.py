"""The embedded-default demo: index the sample documents shipped with ragrec, query, print hits.

This is the smallest end-to-end path (local files -> real Elasticsearch -> search results);
the full ingestion engine grows out of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from elasticsearch import Elasticsearch, helpers

DEMO_INDEX = "ragrec-demo"
DEMO_QUERIES = (
    "how do I get reimbursed for a hotel",
    "the VPN keeps disconnecting at the airport",
    "my laptop was stolen, what should I do",
)

PASSAGE_MAPPING = {
    "properties": {
        "doc_id": {"type": "keyword"},
        "source": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "english"},
        "section": {"type": "text", "analyzer": "english"},
        "text": {"type": "text", "analyzer": "english"},
    }
}


@dataclass(frozen=True)
class Passage:
    doc_id: str
    source: str
    title: str
    section: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.doc_id}:{self.section}"


def sample_passages() -> Iterator[Passage]:
    """One passage per ``##`` section of each bundled Markdown sample."""
    folder = resources.files("ragrec") / "samples"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".md"):
            continue
        markdown = entry.read_text(encoding="utf-8")
        title_match = re.search(r"^# (.+)$", markdown, flags=re.M)
        title = title_match.group(1).strip() if title_match else entry.name
        for block in re.split(r"^## ", markdown, flags=re.M)[1:]:
            heading, _, body = block.partition("\n")
            yield Passage(
                doc_id=entry.name.removesuffix(".md"),
                source=f"samples/{entry.name}",
                title=title,
                section=heading.strip(),
                text=" ".join(body.split()),
            )


def index_samples(client: Elasticsearch, index: str = DEMO_INDEX) -> int:
    """(Re)index the samples; ids are deterministic, so a re-run overwrites, never duplicates."""
    if not client.indices.exists(index=index):
        client.indices.create(index=index, mappings=PASSAGE_MAPPING)
    actions = (
        {"_index": index, "_id": p.id, "_source": p.__dict__} for p in sample_passages()
    )
    indexed, _errors = helpers.bulk(client, actions, refresh="wait_for")
    return indexed


def search(client: Elasticsearch, query: str, index: str = DEMO_INDEX, k: int = 3) -> list[dict]:
    response = client.search(
        index=index,
        size=k,
        query={
            "multi_match": {
                "query": query,
                "fields": ["text", "section^2", "title"],
            }
        },
        highlight={"fields": {"text": {"fragment_size": 160, "number_of_fragments": 1}}},
    )
    return response["hits"]["hits"]


def format_hits(query: str, hits: list[dict]) -> str:
    lines = [f"Query: {query}"]
    if not hits:
        lines.append("  (no hits)")
    for rank, hit in enumerate(hits, start=1):
        source = hit["_source"]
        snippet = (hit.get("highlight", {}).get("text") or [source["text"][:160]])[0]
        snippet = snippet.replace("<em>", "[").replace("</em>", "]")
        lines.append(
            f"  {rank}. {hit['_score']:.2f}  {source['title']} > {source['section']}  "
            f"({source['source']})"
        )
        lines.append(f"        {snippet}")
    return "\n".join(lines)
