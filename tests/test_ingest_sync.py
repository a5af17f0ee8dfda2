"""Incremental, idempotent ingestion into the real node with the real model."""

from __future__ import annotations

import os
import time

import pytest
from servers.embedding_endpoint import Behaviour, EmbeddingEndpoint

from ragrec.chunking import ChunkSettings
from ragrec.embedding.model_endpoint import ModelEndpoint
from ragrec.indexing import versions
from ragrec.indexing.mapping import VectorSettings
from ragrec.sources import LocalSource

TOPICS = {
    "travel.md": "# Travel\n\nHotel and flight costs are reimbursed within thirty days.\n",
    "vpn.md": "# VPN\n\nThe VPN client drops at airports; switch to the TCP gateway.\n",
    "leave.txt": "Parental leave lasts twenty weeks and is fully paid.\n",
    "onboarding.md": "# Onboarding\n\nNew engineers get a laptop, a badge and a buddy.\n",
}


def write_corpus(folder, files=TOPICS):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


class CrashingEmbedder:
    """The real model, until the power goes out after ``crash_after`` windows."""

    def __init__(self, embedder, crash_after: int):
        self.inner, self.crash_after, self.calls = embedder, crash_after, 0
        self.model_version, self.dims = embedder.model_version, embedder.dims
        self.document_version = getattr(embedder, "document_version", None)
        self.max_input_tokens = embedder.max_input_tokens

    def describe(self):
        pass

    def embed(self, texts, token_counts=None):
        self.calls += 1
        if self.calls > self.crash_after:
            raise RuntimeError("simulated crash")
        return self.inner.embed(texts, token_counts)


class CountingEmbedder(CrashingEmbedder):
    """The real model, counting the texts it is asked to encode."""

    def __init__(self, embedder):
        super().__init__(embedder, crash_after=10**9)
        self.texts = 0

    def embed(self, texts, token_counts=None):
        self.texts += len(texts)
        return super().embed(texts, token_counts)


def vectors_of(es, alias):
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=1000, query={"match_all": {}},
                     source=["content_hash", "vector"])["hits"]["hits"]
    return {h["_id"]: (h["_source"]["content_hash"], h["_source"]["vector"]) for h in hits}


def snapshot(es, alias):
    """Everything that defines the index's content, keyed by chunk id."""
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=1000, query={"match_all": {}},
                     source=["doc_id", "chunk_no", "chunk_count", "text",
                             "source_fingerprint", "content_hash"])["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def bump(path, text=None):
    """Change a file's content (or only its mtime) so its fingerprint changes."""
    if text is not None:
        path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def alias(index_name, cleanup_alias):
    cleanup_alias(index_name)
    return index_name


def test_first_run_indexes_everything_and_a_rerun_is_a_no_op(tmp_path, make_ingestor, es,
                                                               alias):
    source = LocalSource(write_corpus(tmp_path / "docs"))
    first = make_ingestor().ingest(source, alias)
    assert (first.docs_seen, first.docs_new, first.docs_quarantined) == (4, 4, 0)
    assert first.chunks_indexed == 4
    before = snapshot(es, alias)

    again = make_ingestor().ingest(source, alias)
    assert (again.docs_new, again.docs_changed, again.docs_unchanged) == (0, 0, 4)
    assert again.chunks_indexed == 0
    assert snapshot(es, alias) == before

    hits = es.search(index=alias, query={"match": {"text": "reimburse hotels"}})["hits"]
    assert hits["hits"][0]["_source"]["doc_id"] == "travel.md"
    meta = versions.index_meta(es, alias)
    assert meta["model_version"] == "all-minilm-l6-v2-base" and meta["dims"] == 384


def test_changes_and_deletions_propagate_and_stale_chunks_go(tmp_path, make_ingestor, es,
                                                              alias):
    folder = write_corpus(tmp_path / "docs")
    long_text = "# Handbook\n\n" + "\n\n".join(
        f"Section {i}. " + "Policies describe how employees travel and claim costs. " * 12
        for i in range(12)
    )
    (folder / "handbook.md").write_text(long_text)
    source = LocalSource(folder)
    make_ingestor(chunking=ChunkSettings(size=128, overlap=16)).ingest(source, alias)
    chunks_before = [s for s in snapshot(es, alias).values() if s["doc_id"] == "handbook.md"]
    assert len(chunks_before) > 4

    bump(folder / "handbook.md", "# Handbook\n\nNow a single short policy on travel.\n")
    (folder / "leave.txt").unlink()
    (folder / "security.md").write_text("# Security\n\nReport a lost laptop within an hour.\n")
    summary = make_ingestor().ingest(source, alias)

    assert (summary.docs_new, summary.docs_changed, summary.docs_deleted) == (1, 1, 1)
    assert summary.docs_unchanged == 3
    state = snapshot(es, alias)
    handbook = [s for s in state.values() if s["doc_id"] == "handbook.md"]
    assert len(handbook) == 1 and "single short policy" in handbook[0]["text"]
    assert not any(s["doc_id"] == "leave.txt" for s in state.values())
    assert any(s["doc_id"] == "security.md" for s in state.values())


def test_crash_mid_run_then_rerun_equals_one_clean_run(tmp_path, make_ingestor, embedder,
                                                        es, alias, cleanup_alias):
    files = {f"doc{i:02d}.md": f"# Doc {i}\n\n" + f"Paragraph about topic {i}. " * 40
             for i in range(12)}
    source = LocalSource(write_corpus(tmp_path / "docs", files))

    with pytest.raises(RuntimeError, match="simulated crash"):
        make_ingestor(CrashingEmbedder(embedder, crash_after=2), window_chunks=3) \
            .ingest(source, alias)
    partial = snapshot(es, alias)
    assert 0 < len({s["doc_id"] for s in partial.values()}) < 12

    rerun = make_ingestor().ingest(source, alias)
    assert rerun.docs_new + rerun.docs_changed == 12 - rerun.docs_unchanged
    clean_alias = alias + "-clean"
    cleanup_alias(clean_alias)
    make_ingestor().ingest(source, clean_alias)

    crashed, clean = snapshot(es, alias), snapshot(es, clean_alias)
    assert crashed.keys() == clean.keys()
    assert {k: v["content_hash"] for k, v in crashed.items()} == \
        {k: v["content_hash"] for k, v in clean.items()}
    assert make_ingestor().ingest(source, alias).docs_unchanged == 12


class RecordingEmbedder(CrashingEmbedder):
    """The real model, recording how many texts each call encodes."""

    def __init__(self, embedder):
        super().__init__(embedder, crash_after=10**9)
        self.sizes: list[int] = []

    def embed(self, texts, token_counts=None):
        self.sizes.append(len(texts))
        return super().embed(texts, token_counts)


def test_encoding_starts_on_a_small_first_window_then_doubles(tmp_path, make_ingestor,
                                                             embedder, es, alias):
    """The encoder is not left idle while a whole window is parsed at the start: the first
    window is FIRST_WINDOW_CHUNKS chunks, and each next one doubles up to window_chunks."""
    from ragrec.sync import FIRST_WINDOW_CHUNKS

    files = {f"note{i:03d}.md": f"# Note {i}\n\nShort note number {i}.\n" for i in range(150)}
    recording = RecordingEmbedder(embedder)
    summary = make_ingestor(recording, window_chunks=64).ingest(
        LocalSource(write_corpus(tmp_path / "docs", files)), alias)
    assert summary.chunks_indexed == 150  # one chunk each
    assert FIRST_WINDOW_CHUNKS == 32
    assert recording.sizes == [32, 64, 54]


def test_crash_in_a_partly_written_document_is_redone(tmp_path, make_ingestor, es, alias):
    source = LocalSource(write_corpus(tmp_path / "docs"))
    make_ingestor().ingest(source, alias)
    # A document whose chunk count says 3 but only chunk 0 made it: a crash mid-document.
    ids = [h for h, s in snapshot(es, alias).items() if s["doc_id"] == "vpn.md"]
    es.update(index=alias, id=ids[0], doc={"chunk_count": 3}, refresh=True)
    summary = make_ingestor().ingest(source, alias)
    assert summary.docs_changed == 1
    vpn = [s for s in snapshot(es, alias).values() if s["doc_id"] == "vpn.md"]
    assert [s["chunk_count"] for s in vpn] == [1]


def test_full_rebuild_swaps_the_alias_and_keeps_n_versions(tmp_path, make_ingestor, es,
                                                            alias):
    source = LocalSource(write_corpus(tmp_path / "docs"))
    first = make_ingestor().ingest(source, alias)
    time.sleep(0.01)
    second = make_ingestor(full=True, keep_versions=2).ingest(source, alias)
    assert second.index != first.index
    assert versions.current_version(es, alias) == second.index
    assert second.docs_changed == 4 and second.chunks_indexed == 4
    third = make_ingestor(full=True, keep_versions=2).ingest(source, alias)
    assert versions.list_versions(es, alias) == [second.index, third.index]
    assert es.count(index=alias)["count"] == 4


def test_unchanged_chunk_text_keeps_its_vector_without_encoding(tmp_path, make_ingestor,
                                                                embedder, es, alias):
    folder = write_corpus(tmp_path / "docs")
    sections = [f"## Part {i}\n\n" + f"Rule {i}: expenses of kind {i} need a receipt. " * 20
                for i in range(6)]
    (folder / "policy.md").write_text("# Policy\n\n" + "\n\n".join(sections))
    source = LocalSource(folder)
    settings = ChunkSettings(size=128, overlap=0)
    first = make_ingestor(chunking=settings).ingest(source, alias)
    before = vectors_of(es, alias)
    policy_chunks = first.chunks_indexed - 4
    assert policy_chunks >= 4 and first.chunks_reused == 0

    # A touched file (same bytes) and one edited section of a long document.
    bump(folder / "vpn.md")
    sections[5] = "## Part 5\n\nThis part was rewritten: receipts are now digital only."
    bump(folder / "policy.md", "# Policy\n\n" + "\n\n".join(sections))
    counting = CountingEmbedder(embedder)
    second = make_ingestor(counting, chunking=settings).ingest(source, alias)
    assert second.docs_changed == 2
    assert 1 <= counting.texts < policy_chunks  # only the edited section's chunks
    assert second.chunks_reused == second.chunks_indexed - counting.texts
    after = vectors_of(es, alias)
    reused = [i for i, (digest, _) in after.items() if before.get(i, ("",))[0] == digest]
    assert len(reused) >= second.chunks_reused
    for chunk in reused:
        assert after[chunk][1] == pytest.approx(before[chunk][1], abs=1e-7)
    hits = es.search(index=alias, query={"match": {"text": "receipts digital"}})["hits"]
    assert hits["hits"][0]["_source"]["doc_id"] == "policy.md"

    # A rebuild with the same model copies every vector; --reencode encodes them all.
    counting.texts = 0
    rebuilt = make_ingestor(counting, chunking=settings, full=True).ingest(source, alias)
    assert counting.texts == 0 and rebuilt.chunks_reused == rebuilt.chunks_indexed
    assert sorted(v for _, v in vectors_of(es, alias).values()) == sorted(
        v for _, v in after.values())
    make_ingestor(counting, chunking=settings, full=True,
                  reuse_vectors=False).ingest(source, alias)
    assert counting.texts == rebuilt.chunks_indexed


def test_a_version_that_kept_its_base_document_encoder_copies_the_base_vectors(
        tmp_path, make_ingestor, embedder, es, alias):
    """Rolling out a version that trained only its query side rebuilds the index for the new
    version without encoding a chunk: its documents' vectors are the base's. A version whose
    card does not say so is encoded in full."""
    from ragrec.embedding.in_process import InProcessEmbedder, base_model_dir
    from ragrec.models.store import write_bundle

    source = LocalSource(write_corpus(tmp_path / "docs"))
    first = make_ingestor().ingest(source, alias)
    before = vectors_of(es, alias)
    kept = write_bundle(tmp_path / "kept", "kb", "kb-queries-1", base_model_dir(),
                        query_encoder_src=base_model_dir(), lineage={"documents": {
                            "base_model": embedder.model_version, "trained": False}})
    counting = CountingEmbedder(InProcessEmbedder(kept.embedder_dir))
    assert counting.model_version == "kb-queries-1"
    assert counting.document_version == embedder.model_version
    rebuilt = make_ingestor(counting, full=True).ingest(source, alias)
    assert counting.texts == 0 and rebuilt.chunks_reused == rebuilt.chunks_indexed \
        == first.chunks_indexed
    meta = versions.index_meta(es, rebuilt.index)
    assert meta["model_version"] == "kb-queries-1"
    assert meta["document_version"] == embedder.model_version
    assert vectors_of(es, alias) == before

    retrained = write_bundle(tmp_path / "retrained", "kb", "kb-both-1", base_model_dir())
    other = CountingEmbedder(InProcessEmbedder(retrained.embedder_dir))
    again = make_ingestor(other, full=True).ingest(source, alias)
    assert again.chunks_reused == 0 and other.texts == again.chunks_indexed > 0


def test_embedding_endpoint_429_then_success(tmp_path, make_ingestor, es, alias):
    behaviour = Behaviour(transient=[(429, {"Retry-After": "1"}), (429, {})])
    with EmbeddingEndpoint(behaviour) as endpoint:
        remote = ModelEndpoint(endpoint.eas_url(), token="secret-token", backoff_seconds=0.05)
        summary = make_ingestor(remote).ingest(LocalSource(write_corpus(tmp_path / "d")), alias)
    assert summary.docs_new == 4 and summary.docs_quarantined == 0
    assert summary.model_version == "test-model-v1"
    assert es.count(index=alias)["count"] == 4


def test_wrong_dimension_batch_is_quarantined_and_nothing_else_lost(tmp_path, make_ingestor,
                                                                     es, alias):
    files = {**TOPICS, "broken.md": "# Broken\n\nThis text makes the endpoint misbehave: "
                                    "BROKEN.\n"}
    folder = write_corpus(tmp_path / "d", files)
    with EmbeddingEndpoint(Behaviour(wrong_dims_marker="BROKEN")) as endpoint:
        remote = ModelEndpoint(endpoint.eas_url(), token="secret-token", batch_size=1)
        summary = make_ingestor(remote).ingest(LocalSource(folder), alias)
    assert summary.docs_new == 5 and summary.chunks_indexed == 4
    assert [(q["doc_id"], q["stage"], q["reason"]) for q in summary.quarantined] == \
        [("broken.md", "embed", "embedding_failed")]
    assert "wrong embedding dimension" in summary.quarantined[0]["detail"]
    indexed = {s["doc_id"] for s in snapshot(es, alias).values()}
    assert indexed == set(TOPICS)

    # An embedding failure is not the file's fault: the next run retries it.
    with EmbeddingEndpoint() as endpoint:
        remote = ModelEndpoint(endpoint.eas_url(), token="secret-token")
        rerun = make_ingestor(remote).ingest(LocalSource(folder), alias)
    assert rerun.docs_changed == 1 and rerun.docs_quarantined == 0
    assert "broken.md" in {s["doc_id"] for s in snapshot(es, alias).values()}


def test_a_document_elasticsearch_rejects_is_reported_not_lost(tmp_path, make_ingestor, es,
                                                                alias):
    """dot_product indices accept only unit vectors; an endpoint that returns one that is
    not gets that document rejected by Elasticsearch, item by item."""
    files = {**TOPICS, "odd.md": "# Odd\n\nThe endpoint scales this vector: SCALED.\n"}
    folder = write_corpus(tmp_path / "d", files)
    with EmbeddingEndpoint(Behaviour(unnormalised_marker="SCALED")) as endpoint:
        remote = ModelEndpoint(endpoint.eas_url(), token="secret-token")
        summary = make_ingestor(remote, vectors=VectorSettings(similarity="dot_product")) \
            .ingest(LocalSource(folder), alias)
    assert summary.chunks_indexed == 4
    (record,) = summary.quarantined
    assert (record["doc_id"], record["stage"], record["reason"]) == \
        ("odd.md", "index", "rejected_by_elasticsearch")
    assert "unit-length" in record["detail"] or "dot_product" in record["detail"]
    assert {s["doc_id"] for s in snapshot(es, alias).values()} == set(TOPICS)


def test_incremental_run_refuses_an_encoder_of_another_model(tmp_path, make_ingestor, alias):
    from ragrec.sync import IngestError

    folder = write_corpus(tmp_path / "d")
    make_ingestor().ingest(LocalSource(folder), alias)
    with EmbeddingEndpoint() as endpoint:
        remote = ModelEndpoint(endpoint.eas_url(), token="secret-token")
        with pytest.raises(IngestError, match="rebuild with --full"):
            make_ingestor(remote).ingest(LocalSource(folder), alias)


def test_a_crashed_rebuild_never_touches_the_live_alias(tmp_path, make_ingestor, embedder,
                                                        es, alias):
    files = {f"doc{i}.md": f"# Doc {i}\n\nText about subject {i}.\n" for i in range(6)}
    source = LocalSource(write_corpus(tmp_path / "docs", files))
    live = make_ingestor().ingest(source, alias).index
    with pytest.raises(RuntimeError, match="simulated crash"):
        # --reencode: with the same model a rebuild would copy every vector and never
        # call the (crashing) encoder.
        make_ingestor(CrashingEmbedder(embedder, crash_after=1), full=True,
                      window_chunks=2, reuse_vectors=False).ingest(source, alias)
    assert versions.current_version(es, alias) == live
    assert len(versions.list_versions(es, alias)) == 2  # the half-built orphan
    assert es.count(index=alias)["count"] == 6

    make_ingestor().ingest(source, alias)  # an incremental run leaves rebuilds alone
    assert len(versions.list_versions(es, alias)) == 2
    rebuilt = make_ingestor(full=True).ingest(source, alias)
    assert versions.list_versions(es, alias) == [live, rebuilt.index]
    assert versions.current_version(es, alias) == rebuilt.index
    assert es.count(index=alias)["count"] == 6


class CountingSource:
    """A source that counts the bytes it hands out."""

    def __init__(self, inner):
        self.inner, self.uri, self.bytes_read = inner, inner.uri, 0

    def list(self, *args):
        return self.inner.list(*args)

    def stat(self, key):
        return self.inner.stat(key)

    def read(self, obj, max_bytes=None):
        data = self.inner.read(obj, max_bytes)
        self.bytes_read += len(data)
        return data


def test_odd_names_and_entries_are_indexed_or_quarantined_and_nothing_else_is_lost(
        tmp_path, make_ingestor, es, alias):
    docs = write_corpus(tmp_path / "docs")
    with open(os.path.join(os.fsencode(docs), b"caf\xe9.md"), "wb") as handle:
        handle.write(b"# Caf\xc3\xa9\n\nThe espresso machine is on the third floor.\n")
    os.mkfifo(docs / "pipe.md")
    (docs / "loop.md").symlink_to(docs / "loop.md")
    with open(docs / "huge.txt", "wb") as handle:  # sparse: 3 GB listed, nothing on disk
        handle.truncate(3 * 1024**3)
    source = CountingSource(LocalSource(docs))

    summary = make_ingestor().ingest(source, alias)
    reasons = {r["doc_id"]: r["reason"] for r in summary.quarantined}
    assert reasons == {"pipe.md": "not_a_regular_file", "loop.md": "unreadable",
                       "huge.txt": "too_large"}
    assert summary.docs_new == len(TOPICS) + 4
    assert source.bytes_read < 10_000  # the 3 GB file was judged by its size, never read
    es.indices.refresh(index=alias)
    hit = es.search(index=alias, query={"match": {"text": "espresso"}})["hits"]["hits"][0]
    assert hit["_source"]["doc_id"] == "caf\\xe9.md"
    assert hit["_source"]["source_uri"].endswith("/caf%E9.md")

    again = make_ingestor().ingest(source, alias)
    assert again.chunks_indexed == 0
    assert again.docs_unchanged == len(TOPICS) + 3  # the looping link is retried
    assert again.docs_quarantined == 3
