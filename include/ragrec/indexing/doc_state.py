"""What the index holds per document, read with one composite aggregation (paged).

A document is *complete* when all its chunks carry one source fingerprint and their number
equals the ``chunk_count`` they record. A run that crashed half-way through a document
leaves it incomplete, so the next run redoes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from elasticsearch import Elasticsearch


@dataclass(frozen=True)
class DocState:
    doc_id: str
    fingerprints: frozenset[str]
    chunks_present: int
    chunk_count: int
    max_chunk_no: int

    @property
    def complete(self) -> bool:
        return (
            len(self.fingerprints) == 1
            and self.chunks_present == self.chunk_count
            and self.max_chunk_no == self.chunk_count - 1
        )

    @property
    def fingerprint(self) -> str | None:
        return next(iter(self.fingerprints)) if len(self.fingerprints) == 1 else None


def iter_doc_states(client: Elasticsearch, index: str, page_size: int = 1000,
                    key_range: tuple[str | None, str] | None = None) -> Iterator[DocState]:
    """Every document's state in ``doc_id`` order (UTF-8 byte order, as ``str`` sorts), or
    only those in ``key_range`` ``(after, last]`` (one batch of a mapped ingest)."""
    query: dict = {"match_all": {}}
    if key_range is not None:
        after, last = key_range
        bounds = {"lte": last} if after is None else {"gt": after, "lte": last}
        query = {"range": {"doc_id": bounds}}
    after = None
    while True:
        composite = {"size": page_size, "sources": [{"doc": {"terms": {"field": "doc_id"}}}]}
        if after:
            composite["after"] = after
        response = client.search(
            index=index,
            size=0,
            query=query,
            aggs={
                "docs": {
                    "composite": composite,
                    "aggs": {
                        "fingerprints": {"terms": {"field": "source_fingerprint", "size": 4}},
                        "chunk_count": {"max": {"field": "chunk_count"}},
                        "max_chunk_no": {"max": {"field": "chunk_no"}},
                    },
                }
            },
        )
        agg = response["aggregations"]["docs"]
        for bucket in agg["buckets"]:
            yield DocState(
                doc_id=bucket["key"]["doc"],
                fingerprints=frozenset(b["key"] for b in bucket["fingerprints"]["buckets"]),
                chunks_present=bucket["doc_count"],
                chunk_count=int(bucket["chunk_count"]["value"] or 0),
                max_chunk_no=int(bucket["max_chunk_no"]["value"] or 0),
            )
        after = agg.get("after_key")
        if not after or not agg["buckets"]:
            return
