"""Bulk writes through the client's streaming helper, with per-item outcomes.

Requests are bounded in bytes and actions. An item refused for a reason of the cluster's -
429 (too busy), 502/503/504 (a shard without a primary while a node leaves and a replica is
promoted, no elected master) - is sent again with backoff; if the cluster still cannot take
it, the write fails as a whole (``BulkUnavailable``, a transport error: "run again"), never
blaming the document. Any other rejected item is reported against its document, so a bad
document is quarantined instead of failing the run or vanishing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from elasticsearch import Elasticsearch, TransportError, helpers

log = logging.getLogger(__name__)

MAX_CHUNK_BYTES = 10 * 1024 * 1024
CHUNK_ACTIONS = 1000
TRANSIENT = frozenset({429, 502, 503, 504})
RETRY_ROUNDS = 6  # pauses 1, 2, 4, 8, 16, 30 s: a minute for a cluster to recover


class BulkUnavailable(TransportError):
    """Elasticsearch kept refusing items for a reason of its own (a shard with no primary,
    a cluster too busy) after every retry."""


@dataclass
class BulkOutcome:
    succeeded: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # action _id -> reason
    retried: int = 0  # items sent again after a transient refusal


def _reason(result: dict) -> str:
    error = result.get("error") or {}
    reason = error.get("reason") if isinstance(error, dict) else str(error)
    kind = error.get("type") if isinstance(error, dict) else ""
    return f"{kind}: {reason}"[:500]


def run_bulk(client: Elasticsearch, actions: Iterable[dict], rounds: int = RETRY_ROUNDS,
             first_pause: float = 1.0, max_pause: float = 30.0,
             shard_wait: str | None = None) -> BulkOutcome:
    """Writes ``actions``; ``shard_wait``: how long Elasticsearch waits for an unavailable
    primary before refusing an item (its ``timeout``, one minute unless given)."""
    outcome = BulkOutcome()
    params = {"timeout": shard_wait} if shard_wait else {}
    batch: Iterable[dict] = actions
    for attempt in range(rounds + 1):
        sent: dict[str, dict] = {}  # _id -> action, to send a refused item again

        def recorded(items: Iterable[dict], sent: dict[str, dict] = sent) -> Iterator[dict]:
            for action in items:
                if "_id" in action:
                    sent[str(action["_id"])] = action
                yield action

        again: list[dict] = []
        last_reason = ""
        for ok, item in helpers.streaming_bulk(
            client,
            recorded(batch),
            chunk_size=CHUNK_ACTIONS,
            max_chunk_bytes=MAX_CHUNK_BYTES,
            raise_on_error=False,
            raise_on_exception=True,
            max_retries=0,  # 429s come back here, with the other transient refusals
            **params,
        ):
            (operation, result), = item.items()
            if ok:
                outcome.succeeded += 1
                continue
            if operation == "delete" and result.get("status") == 404:
                outcome.succeeded += 1  # already gone: deleting is idempotent
                continue
            action = sent.get(str(result.get("_id", "")))
            if result.get("status") in TRANSIENT and action is not None:
                again.append(action)
                last_reason = _reason(result)
                continue
            outcome.failed[result.get("_id", "")] = _reason(result)
        if not again:
            return outcome
        if attempt == rounds:
            raise BulkUnavailable(
                f"Elasticsearch refused {len(again)} bulk items {rounds + 1} times "
                f"(last: {last_reason})")
        pause = min(max_pause, first_pause * 2 ** attempt)
        log.warning("Elasticsearch refused %d bulk items for now (%s); sending them again in "
                    "%.0f s", len(again), last_reason, pause)
        outcome.retried += len(again)
        time.sleep(pause)
        batch = again
    return outcome
