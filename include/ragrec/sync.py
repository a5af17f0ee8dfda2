"""Incremental, idempotent ingestion: source listing vs index state -> parse, chunk, embed,
bulk-index, with stages overlapping in threads.

* **Plan** (``indexing.sync_plan``): a sorted merge of the source listing with the index
  state, both streamed: each listed object is new, changed, unchanged (complete in the
  index with the same fingerprint, or quarantined for a reason that depends only on the
  file), and each indexed document missing from the listing is deleted. The documents to
  work on and to delete are spooled (``sources.ordering.Spool``), so memory stays flat
  however large the listing. ``full`` rebuilds into a new index version and swaps the alias
  only when the build has finished.
* **Flow**: a reader thread reads, parses and chunks; the calling thread embeds windows of
  chunks; a writer thread bulk-indexes them, removes stale chunks and records quarantine.
  Memory is bounded by the queues, not by the corpus. Chunks whose text the index already
  holds from this document encoder keep their stored vector (``indexing.vector_reuse``).
* **Idempotence**: chunk ids are ``hash(doc_id)-chunk_no``; a rerun overwrites; a document
  left half-written by a crash is incomplete and gets redone.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
from elasticsearch import ApiError, Elasticsearch, TransportError

from ragrec.chunking import Chunker, ChunkSettings, ChunkTooLong, ModelTokenizer
from ragrec.embedding.base import Embedder, document_version
from ragrec.indexing import language, sync_plan, versions
from ragrec.indexing.bulk_writer import BulkUnavailable, run_bulk
from ragrec.indexing.chunk_document import chunk_source
from ragrec.indexing.doc_state import DocState, iter_doc_states
from ragrec.indexing.mapping import VectorSettings, chunk_index_body
from ragrec.indexing.quarantine_store import (
    ensure_quarantine_index,
    is_sticky,
    quarantine_actions,
    read_quarantine,
    release_actions,
)
from ragrec.indexing.vector_reuse import VectorReuse
from ragrec.parsing import ParseSettings, parse_document
from ragrec.progress import Progress
from ragrec.records import Chunk, Quarantined, SourceObject, chunk_id
from ragrec.sources.base import Source, SourceUnavailable
from ragrec.sources.ordering import Spool, in_key_order

log = logging.getLogger(__name__)
_DONE = object()
# The first window's chunks; each next window doubles up to IngestOptions.window_chunks.
FIRST_WINDOW_CHUNKS = 32
# Reads in a row that find the source itself unreachable (each after its own retries) before
# the run stops: one object a server cannot serve is quarantined, an outage is not.
SOURCE_OUTAGE_READS = 3


class SourceOutage(RuntimeError):
    """The source stopped answering during a run."""


class IngestError(RuntimeError):
    """A run that could not finish. ``summary`` holds what it had done by then (None when
    it failed before doing anything); a re-run picks up from there."""

    def __init__(self, message: str, summary: IngestSummary | None = None):
        super().__init__(message)
        self.summary = summary


def describe_es_failure(exc: Exception) -> str:
    """One line for an Elasticsearch failure (an outage or a refused request)."""
    if isinstance(exc, ApiError):
        return f"Elasticsearch answered {exc.meta.status}: {exc.message}"
    if isinstance(exc, BulkUnavailable):
        return f"Elasticsearch could not take the writes ({exc})"
    return f"Elasticsearch is unreachable ({type(exc).__name__}: {str(exc)[:300]})"


@dataclass(frozen=True)
class IngestOptions:
    full: bool = False
    keep_versions: int = 2
    window_chunks: int = 512
    parse: ParseSettings = ParseSettings()
    chunking: ChunkSettings = ChunkSettings()
    vectors: VectorSettings = VectorSettings()
    modified_since: datetime | None = None
    modified_before: datetime | None = None
    show_progress: bool = True
    reuse_vectors: bool = True  # unchanged chunk text -> the vector the index already has
    partial_listing: bool = False  # the source lists a key range (a batch): never delete
    swap_alias: bool = True  # False: a full rebuild is left for the caller to gate and swap
    language: str | None = None  # en | zh | auto; None: the live index's (``language``)

    @property
    def windowed(self) -> bool:
        return (self.partial_listing or self.modified_since is not None
                or self.modified_before is not None)


@dataclass
class IngestSummary:
    docs_seen: int = 0
    docs_new: int = 0
    docs_changed: int = 0
    docs_unchanged: int = 0
    docs_deleted: int = 0
    docs_quarantined: int = 0
    chunks_indexed: int = 0
    chunks_reused: int = 0  # of chunks_indexed: vector taken from the index, not encoded
    tokens_indexed: int = 0
    seconds: float = 0.0
    alias: str = ""
    index: str = ""
    model_version: str = ""
    quarantined: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SyncPlan:
    """A plan's counts, the documents to work on (with what the live index holds for each)
    and the removals; both lists are spools, on disk past a few thousand entries."""
    counts: dict[str, int] = field(default_factory=dict)
    work: Spool = field(default_factory=Spool)  # (SourceObject, DocState | None)
    deleted: Spool = field(default_factory=Spool)  # DocState
    released: list[str] = field(default_factory=list)  # bounded by the quarantine
    listed_quarantine: set[str] = field(default_factory=set)

    def count(self, action: str) -> int:
        return self.counts.get(action, 0)

    @property
    def seen(self) -> int:
        return sum(self.count(a) for a in (sync_plan.NEW, sync_plan.CHANGED,
                                           sync_plan.UNCHANGED, sync_plan.QUARANTINED))

    def close(self) -> None:
        self.work.close()
        self.deleted.close()


def plan_sync(steps, quarantine: dict[str, dict], keep_work: bool = True) -> SyncPlan:
    """Collects ``sync_plan.merge_plan``'s steps into a ``SyncPlan``."""
    plan = SyncPlan()
    for step in steps:
        plan.counts[step.action] = plan.counts.get(step.action, 0) + 1
        if step.obj is not None and step.doc_id in quarantine:
            plan.listed_quarantine.add(step.doc_id)
        if step.action in sync_plan.WORK and keep_work:
            plan.work.append((step.obj, step.state))
        elif step.action == sync_plan.DELETED:
            plan.deleted.append(step.state)
        elif step.action == sync_plan.RELEASED:
            plan.released.append(step.doc_id)
    return plan


def plan_steps(client: Elasticsearch, source: Source, alias: str, live: str | None,
               listing, full: bool = False, windowed: bool = False):
    """(``sync_plan.merge_plan``'s steps, the quarantine records): ``listing`` (one of
    ``source``'s, maybe already started) in key order against the live index's state,
    restricted to the source's ``key_range`` when it has one."""
    states = iter_doc_states(client, live, key_range=getattr(source, "key_range", None)
                             ) if live else ()
    quarantine = read_quarantine(client, alias)
    return sync_plan.merge_plan(in_key_order(source, listing), states, quarantine, full,
                                windowed), quarantine


@dataclass
class _DocWork:
    obj: SourceObject
    live: DocState | None = None  # what the live index holds for it
    chunks: list[Chunk] = field(default_factory=list)
    quarantined: Quarantined | None = None
    source_sha256: str = ""
    vectors: object = None  # (n_chunks, dims) array once embedded
    reused: int = 0  # chunks whose vector came from the index


class Ingestor:
    def __init__(self, client: Elasticsearch, embedder: Embedder,
                 model_tokenizer: ModelTokenizer, options: IngestOptions = IngestOptions(),
                 validator=None):
        """``validator(window, model_version) -> {doc_id: reason}`` (for instance
        ``quality.batch_check.BatchValidator``) checks each window of embedded chunks before
        it is written; the documents it names are quarantined at stage ``validate``."""
        self.client = client
        self.embedder = embedder
        self.options = options
        self.validator = validator
        self.chunker = Chunker(model_tokenizer, options.chunking)
        self._reuse: VectorReuse | None = None
        embedder_limit = getattr(embedder, "max_input_tokens", None)
        if embedder_limit:
            # The tighter of tokenizer config and what the encoder will actually read.
            self.chunker.model_limit = min(self.chunker.model_limit, embedder_limit - 2)

    # -- target index ----------------------------------------------------------------------
    def _target(self, alias: str) -> tuple[str, bool]:
        """(index to write, whether it is a new version that must go live at the end)."""
        self.embedder.describe()
        live = versions.current_version(self.client, alias)
        live_meta = versions.index_meta(self.client, live) if live is not None else None
        asked = self.options.language
        built_for = language.resolve(asked, live_meta, self.embedder)
        body = chunk_index_body(
            self.embedder.dims, self.embedder.model_version, self.options.vectors,
            analyzer=language.analyzer_for(built_for),
            extra_meta={"chunk_size": self.options.chunking.size,
                        "chunk_overlap": self.options.chunking.overlap,
                        "document_version": document_version(self.embedder),
                        "language": built_for},
        )
        if live is None or self.options.full:
            # Versions newer than the live one are rebuilds that never went live (a crash);
            # only a rebuild clears them, so an incremental run never races a rebuild.
            versions.drop_orphans(self.client, alias)
        if live is None:
            name = versions.create_version(self.client, alias, body)
            versions.point_alias(self.client, alias, name)
            return name, False
        if self.options.full:
            return versions.create_version(self.client, alias, body), True
        meta = live_meta
        if built_for != (meta.get("language") or "en"):
            raise IngestError(
                f"index {live!r} was built for language {meta.get('language') or 'en'!r} "
                f"({language.analyzer_for(meta.get('language') or 'en')} analyzer), not "
                f"{built_for!r}: a new analyzer needs a rebuild, so run with --full")
        if meta.get("model_version") != self.embedder.model_version:
            raise IngestError(
                f"index {live!r} was built with model {meta.get('model_version')!r}, the "
                f"encoder is {self.embedder.model_version!r}: index and query encoder must "
                "agree, so rebuild with --full"
            )
        if meta.get("dims") != self.embedder.dims:
            raise IngestError(f"index {live!r} has {meta.get('dims')}-d vectors, the encoder "
                              f"gives {self.embedder.dims}-d: rebuild with --full")
        return live, False

    def prepare(self, alias: str) -> str:
        """The index an incremental run of ``alias`` writes to, created when the alias has
        none yet; refuses an encoder of another model (as ``ingest`` would)."""
        return self._target(alias)[0]

    # -- the run ---------------------------------------------------------------------------
    def _plan(self, source: Source, alias: str, live: str | None, full: bool,
              windowed: bool, listing, keep_work: bool = True) -> SyncPlan:
        steps, quarantine = plan_steps(self.client, source, alias, live, listing, full,
                                       windowed)
        self._known_quarantine = set(quarantine)
        return plan_sync(steps, quarantine, keep_work)

    def ingest(self, source: Source, alias: str) -> IngestSummary:
        started = time.monotonic()
        options = self.options
        # The listing comes first: a source that cannot be listed creates no index.
        listing = iter(source.list(options.modified_since, options.modified_before))
        first = next(listing, None)
        target, goes_live = self._target(alias)
        ensure_quarantine_index(self.client, alias)
        live = versions.current_version(self.client, alias)
        plan = self._plan(source, alias, live, options.full, options.windowed,
                          listing=() if first is None else itertools.chain([first], listing))
        self._goes_live = goes_live
        self._quarantined_now: set[str] = set()
        self._failed_reads = 0  # consecutive reads that found the source unreachable
        self._reuse = VectorReuse.from_live(
            self.client, live, document_version(self.embedder), self.embedder.dims
        ) if options.reuse_vectors else None

        summary = IngestSummary(
            docs_seen=plan.seen, docs_new=plan.count(sync_plan.NEW),
            docs_changed=plan.count(sync_plan.CHANGED),
            docs_unchanged=plan.count(sync_plan.UNCHANGED) + plan.count(sync_plan.QUARANTINED),
            docs_deleted=0 if goes_live else len(plan.deleted), alias=alias, index=target,
            model_version=self.embedder.model_version,
        )
        progress = Progress(f"ingest {alias}", len(plan.work), enabled=options.show_progress)
        try:
            self._run_flow(source, plan.work, target, alias, summary, progress)
            progress.close()
            self._remove(() if goes_live else plan.deleted, plan.released, target, alias)
            if goes_live and options.swap_alias:
                versions.point_alias(self.client, alias, target)
                versions.prune_versions(self.client, alias, options.keep_versions)
            final_quarantine = read_quarantine(self.client, alias)
        except (ApiError, TransportError, SourceOutage) as exc:
            progress.close()
            summary.seconds = round(time.monotonic() - started, 3)
            live_note = (" the live index is unchanged;" if goes_live else "")
            what = (f"the source {source.uri} stopped answering ({exc})"
                    if isinstance(exc, SourceOutage) else describe_es_failure(exc))
            raise IngestError(
                f"{what} after {summary.chunks_indexed} chunks were written:{live_note} run "
                "the same command again to finish (documents already written are skipped)",
                summary) from exc
        finally:
            plan.close()

        in_quarantine = [r for d, r in final_quarantine.items()
                         if d in plan.listed_quarantine or d in self._quarantined_now]
        summary.docs_quarantined = len(in_quarantine)
        summary.quarantined = [
            {"doc_id": r["doc_id"], "stage": r["stage"], "reason": r["reason"],
             "detail": r["detail"][:200]}
            for r in sorted(in_quarantine, key=lambda r: r["doc_id"])
        ][:200]
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    def _remove(self, deleted, released: list[str], target: str, alias: str,
                batch: int = 500) -> None:
        """Deletes the chunks of documents gone from the source (streamed, ``batch``
        documents a request) and releases their quarantine records."""
        def flush(actions: list[dict]) -> None:
            outcome = run_bulk(self.client, actions)
            if outcome.failed:
                raise IngestError(f"could not delete {len(outcome.failed)} stale chunks: "
                                  f"{next(iter(outcome.failed.values()))}")

        cleanup: list[dict] = []
        for count, state in enumerate(deleted, 1):
            cleanup.extend({"_op_type": "delete", "_index": target,
                            "_id": chunk_id(state.doc_id, n)}
                           for n in range(state.max_chunk_no + 1))
            if count % batch == 0:
                flush(cleanup)
                cleanup = []
        cleanup.extend(release_actions(alias, released))
        if cleanup:
            flush(cleanup)
        self.client.indices.refresh(index=[target, f"{alias}--quarantine"])

    def prune(self, source: Source, alias: str) -> IngestSummary:
        """Only the deletion half of a sync: documents the full listing no longer has leave
        the live index (and quarantine). For runs that ingest partial listings (time
        windows, batches); reads nothing but the listing."""
        started = time.monotonic()
        live = versions.current_version(self.client, alias)
        summary = IngestSummary(alias=alias, index=live or "",
                                model_version=self.embedder.model_version)
        if live is None:
            return summary
        ensure_quarantine_index(self.client, alias)
        plan = self._plan(source, alias, live, full=False, windowed=False,
                          listing=source.list(), keep_work=False)
        try:
            self._remove(plan.deleted, plan.released, live, alias)
            summary.docs_seen, summary.docs_deleted = plan.seen, len(plan.deleted)
        finally:
            plan.close()
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    def _run_flow(self, source, work, target, alias, summary, progress) -> None:
        # Whole windows travel between threads: the reader fills the next window while the
        # calling thread encodes this one, so the encoder never waits for parsing mid-run.
        windows_queue: queue.Queue = queue.Queue(maxsize=1)
        write_queue: queue.Queue = queue.Queue(maxsize=2)
        failures: list[BaseException] = []
        stop = threading.Event()

        def read_parse_chunk() -> None:
            try:
                for window in self._windows(source, work, stop):
                    windows_queue.put(window)
            except BaseException as exc:  # noqa: BLE001 - surfaced in the calling thread
                failures.append(exc)
            finally:
                windows_queue.put(_DONE)

        done_docs = 0

        def write() -> None:
            nonlocal done_docs
            try:
                while True:
                    item = write_queue.get()
                    if item is _DONE:
                        return
                    window, errors = item
                    self._write_window(window, errors, target, alias, summary)
                    done_docs += len(window)
                    progress.update(done_docs, f"{summary.chunks_indexed} chunks")
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
                stop.set()
                while write_queue.get() is not _DONE:  # unblock the embedding loop
                    pass

        reader = threading.Thread(target=read_parse_chunk, name="ragrec-read", daemon=True)
        writer = threading.Thread(target=write, name="ragrec-write", daemon=True)
        reader.start()
        writer.start()
        try:
            while (window := windows_queue.get()) is not _DONE:
                if not stop.is_set():
                    write_queue.put((window, self._embed(window)))
        except BaseException:
            stop.set()
            raise
        finally:
            write_queue.put(_DONE)
            writer.join()
            deadline = time.monotonic() + 60
            while reader.is_alive() and time.monotonic() < deadline:
                try:  # a stopped reader may be waiting to hand over a window
                    windows_queue.get(timeout=0.1)
                except queue.Empty:
                    pass
        if failures:
            raise failures[0]

    def _windows(self, source, work, stop: threading.Event):
        """Prepared documents in windows of about ``window_chunks`` chunks. The first
        windows are smaller (FIRST_WINDOW_CHUNKS, doubling) so encoding starts while the
        parsers are still warming up, instead of after a whole window of parsing."""
        window: list[_DocWork] = []
        size, limit = 0, min(FIRST_WINDOW_CHUNKS, self.options.window_chunks)
        for obj, live in work:
            if stop.is_set():
                return
            item = self._prepare(source, obj, live)
            window.append(item)
            size += len(item.chunks)
            # Quarantined documents have no chunks: a window also closes on documents.
            if size >= limit or len(window) >= self.options.window_chunks:
                yield window
                window, size = [], 0
                limit = min(limit * 2, self.options.window_chunks)
        if window:
            yield window

    def _prepare(self, source: Source, obj: SourceObject, live: DocState | None) -> _DocWork:
        def quarantine(stage: str, reason: str, detail: str) -> _DocWork:
            return _DocWork(obj, live, quarantined=Quarantined(
                obj.doc_id, obj.uri, obj.fingerprint, stage, reason, detail))
        if obj.problem is not None:
            return quarantine("read", *obj.problem)
        limit = self.options.parse.max_bytes
        if obj.size > limit:  # from the listing: a huge file is never read
            return quarantine("read", "too_large",
                              f"{obj.size} bytes is above the {limit}-byte limit")
        try:
            data = source.read(obj, limit)
        except SourceUnavailable as exc:
            self._failed_reads += 1
            if self._failed_reads >= SOURCE_OUTAGE_READS:
                raise SourceOutage(f"{self._failed_reads} reads in a row failed, the last: "
                                   f"{exc}") from None
            return quarantine("read", "unreadable", str(exc)[:500])
        except Exception as exc:  # noqa: BLE001 - one unreadable object is its own problem
            return quarantine("read", "unreadable", f"{type(exc).__name__}: {exc}"[:500])
        self._failed_reads = 0
        parsed = parse_document(obj, data, self.options.parse)
        if isinstance(parsed, Quarantined):
            return _DocWork(obj, live, quarantined=parsed)
        try:
            chunks = self.chunker.chunk(parsed)
        except ChunkTooLong as exc:
            return quarantine("chunk", "too_long_for_model", str(exc))
        if not chunks:
            return quarantine("chunk", "empty", "no text left after chunking")
        return _DocWork(obj, live, chunks=chunks, source_sha256=parsed.content_sha256)

    def _embed(self, window: list[_DocWork]) -> dict[str, str]:
        """Embeds in place (vectors attached to the work items); returns doc_id -> error."""
        texts, owners, counts = [], [], []
        for work in window:
            for chunk in work.chunks:
                texts.append(chunk.embedding_text)
                counts.append(chunk.model_token_count)
                owners.append(work)
        if not texts:
            return {}
        stored = (self._reuse.lookup(w.live for w in window if w.live is not None)
                  if self._reuse else {})
        hashes = [c.content_hash for w in window for c in w.chunks] if stored else []
        todo = [i for i in range(len(texts)) if not stored or hashes[i] not in stored]
        vectors = np.empty((len(texts), self.embedder.dims), dtype=np.float32)
        errors: dict[str, str] = {}
        if todo:
            result = self.embedder.embed([texts[i] for i in todo], [counts[i] for i in todo])
            vectors[todo] = result.vectors
            for index, message in result.errors.items():
                errors.setdefault(owners[todo[index]].obj.doc_id, message)
        for i in set(range(len(texts))).difference(todo):
            vectors[i] = stored[hashes[i]]
        encoded = set(todo)
        position = 0
        for work in window:
            end = position + len(work.chunks)
            work.vectors = vectors[position:end]
            work.reused = sum(1 for i in range(position, end) if i not in encoded)
            position = end
        return errors

    def _write_window(self, window, errors, target, alias, summary):
        now = datetime.now(UTC).isoformat()
        actions: list[dict] = []
        bad: list[Quarantined] = []
        good_docs: list[_DocWork] = []
        invalid: dict[str, str] = {}
        ready = [w for w in window if w.quarantined is None and w.obj.doc_id not in errors]
        if self.validator is not None and ready:
            invalid = self.validator(ready, self.embedder.model_version)
        for work in window:
            obj = work.obj
            # A rebuild writes a new index: nothing of the document is in it yet.
            previous = None if self._goes_live else work.live
            if work.quarantined is not None or obj.doc_id in errors or obj.doc_id in invalid:
                record = work.quarantined or (
                    Quarantined(obj.doc_id, obj.uri, obj.fingerprint, "embed",
                                "embedding_failed", errors[obj.doc_id][:500])
                    if obj.doc_id in errors else
                    Quarantined(obj.doc_id, obj.uri, obj.fingerprint, "validate",
                                "quality_check_failed", invalid[obj.doc_id][:500]))
                bad.append(record)
                if previous is not None and is_sticky(record.stage, record.reason):
                    # The file itself changed into something unparseable: its old text no
                    # longer describes the source.
                    actions.extend({"_op_type": "delete", "_index": target,
                                    "_id": chunk_id(obj.doc_id, n)}
                                   for n in range(previous.max_chunk_no + 1))
                continue
            count = len(work.chunks)
            for chunk, vector in zip(work.chunks, work.vectors, strict=True):
                actions.append({
                    "_op_type": "index", "_index": target,
                    "_id": chunk_id(obj.doc_id, chunk.chunk_no),
                    "_source": chunk_source(obj, chunk, count, work.source_sha256, vector,
                                            self.embedder.model_version, now),
                })
            if previous is not None and previous.max_chunk_no >= count:
                actions.extend({"_op_type": "delete", "_index": target,
                                "_id": chunk_id(obj.doc_id, n)}
                               for n in range(count, previous.max_chunk_no + 1))
            good_docs.append(work)

        outcome = run_bulk(self.client, actions)
        rejected: dict[str, str] = {}
        if outcome.failed:
            by_id = {chunk_id(w.obj.doc_id, c.chunk_no): w.obj.doc_id
                     for w in good_docs for c in w.chunks}
            for failed_id, reason in outcome.failed.items():
                doc_id = by_id.get(failed_id)
                if doc_id is None:
                    raise IngestError(f"bulk delete of {failed_id} failed: {reason}")
                rejected.setdefault(doc_id, reason)
        for work in good_docs:
            if work.obj.doc_id in rejected:
                bad.append(Quarantined(work.obj.doc_id, work.obj.uri, work.obj.fingerprint,
                                       "index", "rejected_by_elasticsearch",
                                       rejected[work.obj.doc_id]))
            else:
                summary.chunks_indexed += len(work.chunks)
                summary.chunks_reused += work.reused
                summary.tokens_indexed += sum(c.model_token_count for c in work.chunks)
        released = [w.obj.doc_id for w in good_docs
                    if w.obj.doc_id not in rejected and w.obj.doc_id in self._known_quarantine]
        self._quarantined_now.update(record.doc_id for record in bad)
        follow_up = quarantine_actions(alias, bad) + release_actions(alias, released)
        if follow_up:
            outcome = run_bulk(self.client, follow_up)
            if outcome.failed:
                raise IngestError(f"could not record quarantine: {outcome.failed}")
