"""What a sync does with each document, by a sorted merge of two streams: the source listing
(``sources.ordering.in_key_order``) and the index state (``doc_state.iter_doc_states``,
a composite aggregation in the same order). Neither stream is held in memory.

Each listed object is *new*, *changed*, *unchanged* (complete in the index with the same
fingerprint) or *quarantined* (still quarantined for a reason that depends only on the
file); with a complete listing, each indexed document missing from it is *deleted* and each
quarantine record of a vanished document *released*.

``key_ranges`` cuts the documents to work on into contiguous key ranges for mapped tasks: a
batch is ``(after, last]``, two keys, whatever the listing's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ragrec.indexing.doc_state import DocState
from ragrec.indexing.quarantine_store import is_sticky
from ragrec.records import SourceObject

NEW, CHANGED, UNCHANGED, QUARANTINED = "new", "changed", "unchanged", "quarantined"
DELETED, RELEASED = "deleted", "released"
WORK = (NEW, CHANGED)


class PlanOrderError(RuntimeError):
    pass


@dataclass(frozen=True)
class Step:
    action: str
    doc_id: str
    obj: SourceObject | None = None
    state: DocState | None = None  # what the live index holds for the document


def _decide(obj: SourceObject, state: DocState | None, record: dict | None,
            full: bool) -> str:
    if not full and state and state.complete and state.fingerprint == obj.fingerprint:
        return UNCHANGED
    if (not full and record and record["fingerprint"] == obj.fingerprint
            and is_sticky(record["stage"], record["reason"])):
        return QUARANTINED
    return CHANGED if state or record else NEW


def _ordered_states(states: Iterable[DocState]) -> Iterator[DocState]:
    last = None
    for state in states:
        if last is not None and state.doc_id <= last:
            raise PlanOrderError(f"the index state came out of order: {state.doc_id!r} "
                                 f"after {last!r}")
        last = state.doc_id
        yield state


def merge_plan(listing: Iterable[SourceObject], states: Iterable[DocState],
               quarantine: Mapping[str, dict], full: bool = False,
               windowed: bool = False) -> Iterator[Step]:
    """One ``Step`` per document, in key order. ``listing`` must be in key order;
    ``windowed`` (a time window or a key range of the source) never deletes."""
    pending = _ordered_states(states)
    state = next(pending, None)
    listed_quarantine: set[str] = set()  # bounded by the quarantine's size
    for obj in listing:
        while state is not None and state.doc_id < obj.doc_id:
            if not windowed:
                yield Step(DELETED, state.doc_id, state=state)
            state = next(pending, None)
        current = None
        if state is not None and state.doc_id == obj.doc_id:
            current, state = state, next(pending, None)
        record = quarantine.get(obj.doc_id)
        if record is not None:
            listed_quarantine.add(obj.doc_id)
        yield Step(_decide(obj, current, record, full), obj.doc_id, obj, current)
    while state is not None:
        if not windowed:
            yield Step(DELETED, state.doc_id, state=state)
        state = next(pending, None)
    if not windowed:
        for doc_id in sorted(set(quarantine) - listed_quarantine):
            yield Step(RELEASED, doc_id)


def key_ranges(keys: Iterable[str], batch_size: int, max_batches: int) -> list[dict]:
    """Contiguous ranges ``(after, last]`` of ``batch_size`` of the sorted ``keys`` each;
    when that would make more than ``max_batches`` ranges, neighbours are joined (the
    batch size doubles), so memory is bounded by ``max_batches``, not by the keys."""
    if batch_size < 1 or max_batches < 1:
        raise ValueError(f"batch_size and max_batches must be at least 1, not {batch_size} "
                         f"and {max_batches}")
    closed: list[list] = []  # [last key, documents]
    size, count, last = batch_size, 0, None
    for key in keys:
        count, last = count + 1, key
        if count >= size:
            closed.append([last, count])
            count = 0
            if len(closed) > max_batches:
                closed = [[pair[-1][0], sum(r[1] for r in pair)]
                          for pair in (closed[i:i + 2] for i in range(0, len(closed), 2))]
                size *= 2
    if count:
        closed.append([last, count])
        if len(closed) > max_batches:  # the partial range joins the one before it
            tail = closed.pop()
            closed[-1] = [tail[0], closed[-1][1] + tail[1]]
    ranges, after = [], None
    for last_key, documents in closed:
        ranges.append({"after": after, "last": last_key, "documents": documents})
        after = last_key
    return ranges
