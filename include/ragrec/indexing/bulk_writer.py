"""Bulk writes through the client's streaming helper, with per-item outcomes.

Requests are bounded in bytes and actions; items rejected with 429 are retried with
backoff by the helper; any other rejected item is reported against its document, so a bad
document is quarantined instead of failing the run or vanishing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from elasticsearch import Elasticsearch, helpers

MAX_CHUNK_BYTES = 10 * 1024 * 1024
CHUNK_ACTIONS = 1000


@dataclass
class BulkOutcome:
    succeeded: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # action _id -> reason


def run_bulk(client: Elasticsearch, actions: Iterable[dict]) -> BulkOutcome:
    outcome = BulkOutcome()
    for ok, item in helpers.streaming_bulk(
        client,
        actions,
        chunk_size=CHUNK_ACTIONS,
        max_chunk_bytes=MAX_CHUNK_BYTES,
        raise_on_error=False,
        raise_on_exception=True,
        max_retries=6,
        initial_backoff=1,
        max_backoff=30,
    ):
        (operation, result), = item.items()
        if ok:
            outcome.succeeded += 1
        elif operation == "delete" and result.get("status") == 404:
            outcome.succeeded += 1  # already gone: deleting is idempotent
        else:
            error = result.get("error") or {}
            reason = error.get("reason") if isinstance(error, dict) else str(error)
            kind = error.get("type") if isinstance(error, dict) else ""
            outcome.failed[result.get("_id", "")] = f"{kind}: {reason}"[:500]
    return outcome
