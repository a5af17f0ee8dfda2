"""The index suite on a live index or one of its versions: as many documents as the source
lists minus quarantine, each once, fresh enough."""

from __future__ import annotations

from datetime import datetime

from elasticsearch import Elasticsearch

from ragrec.sources.base import Source


def validate_index(client: Elasticsearch, source: Source, alias: str, runner=None,
                   fresh_after: datetime | None = None, index: str | None = None,
                   before: datetime | None = None):
    """The index suite on what ``alias`` serves now (or on one of its versions,
    ``index``); returns the QualityReport. Expected: every listed document not in quarantine;
    with ``before`` (an interval's end), documents modified later are only expected once
    some run has indexed them."""
    from ragrec.indexing.quarantine_store import read_quarantine
    from ragrec.quality.expectations import IndexRules, index_suite
    from ragrec.quality.frames import document_frame
    from ragrec.quality.runner import QualityRunner

    target = index or alias
    client.indices.refresh(index=target)
    documents = document_frame(client, target)
    indexed = set(documents["doc_id"])
    listed = {obj.doc_id for obj in source.list()
              if before is None or obj.last_modified < before or obj.doc_id in indexed}
    quarantined = {d for d in read_quarantine(client, alias) if d in listed}
    rules = IndexRules(expected_documents=len(listed - quarantined), fresh_after=fresh_after)
    runner = runner or QualityRunner()
    return runner.validate(documents, index_suite(f"{alias}-index", rules))
