"""The OSS source through the official oss2 SDK against a protocol-level OSS server."""

from __future__ import annotations

import pytest
from servers.oss_server import OssServer

from ragrec.config import OssSettings
from ragrec.sources import SourceError, open_source
from ragrec.sources.oss import OssSource

FILES = {f"kb/docs/note-{i:03d}.txt": f"Note {i}: the VPN gateway {i}.".encode()
         for i in range(23)}
FILES["kb/docs/sub dir/ümlaut file.md"] = "# Title\n\nkönnen".encode()
FILES["other/ignored.txt"] = b"outside the prefix"


@pytest.fixture
def oss():
    with OssServer({"corp-bucket": dict(FILES)}) as server:
        yield server


def settings(server, secret="test-secret"):
    return OssSettings(endpoint=server.endpoint, access_key_id="test-ak",
                       access_key_secret=secret)


def test_listing_pages_through_the_whole_prefix(oss):
    source = OssSource.from_uri("oss://corp-bucket/kb/docs/", settings(oss), page_size=5)
    listed = list(source.list())
    assert len(listed) == 24
    assert {o.key for o in listed} == {k.removeprefix("kb/docs/") for k in FILES
                                      if k.startswith("kb/")}
    pages = [r for r in oss.requests if r["params"].get("list-type") == "2"]
    assert len(pages) == 5
    assert all(r["params"]["max-keys"] == "5" for r in pages)
    assert sum(1 for r in pages if r["params"].get("continuation-token")) == 4
    note = next(o for o in listed if o.key == "note-007.txt")
    assert note.size == len(FILES["kb/docs/note-007.txt"])
    assert len(note.fingerprint) == 32 and note.uri == "oss://corp-bucket/kb/docs/note-007.txt"


def test_reads_objects_including_non_ascii_keys(oss):
    source = OssSource.from_uri("oss://corp-bucket/kb/docs", settings(oss))
    objects = {o.key: o for o in source.list()}
    assert source.read(objects["sub dir/ümlaut file.md"]) == "# Title\n\nkönnen".encode()
    assert source.head(objects["note-001.txt"])["size"] == len(FILES["kb/docs/note-001.txt"])


def test_wrong_secret_is_a_clear_error_not_a_retry_loop(oss):
    source = OssSource.from_uri("oss://corp-bucket/kb/", settings(oss, secret="nope"))
    with pytest.raises(SourceError, match="SignatureDoesNotMatch"):
        list(source.list())
    assert len(oss.requests) == 1


def test_missing_object_and_missing_bucket(oss):
    source = OssSource.from_uri("oss://corp-bucket/kb/docs", settings(oss))
    obj = next(iter(source.list()))
    oss.delete("corp-bucket", "kb/docs/" + obj.key)
    with pytest.raises(SourceError, match="NoSuchKey"):
        source.read(obj)
    with pytest.raises(SourceError, match="NoSuchBucket"):
        list(OssSource.from_uri("oss://no-bucket/x", settings(oss)).list())


def test_server_errors_are_retried_with_backoff(oss):
    source = OssSource.from_uri("oss://corp-bucket/kb/docs", settings(oss),
                                backoff_seconds=0.01)
    obj = next(o for o in source.list() if o.key == "note-002.txt")
    oss.failures["kb/docs/note-002.txt"] = [503, 500]
    assert source.read(obj) == FILES["kb/docs/note-002.txt"]
    reads = [r for r in oss.requests if r["key"] == "kb/docs/note-002.txt"]
    assert len(reads) == 3


def test_missing_credentials_are_reported_before_any_request(monkeypatch):
    for var in ("OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SourceError, match="OSS endpoint missing"):
        open_source("oss://bucket/prefix")


def test_ingest_from_oss_into_elasticsearch(oss, make_ingestor, es, index_name,
                                            cleanup_alias, monkeypatch):
    cleanup_alias(index_name)
    monkeypatch.setenv("OSS_ENDPOINT", oss.endpoint)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test-ak")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test-secret")
    source = open_source("oss://corp-bucket/kb/docs/")
    first = make_ingestor().ingest(source, index_name)
    assert (first.docs_new, first.chunks_indexed, first.docs_quarantined) == (24, 24, 0)

    oss.put("corp-bucket", "kb/docs/note-003.txt", b"Note 3 now talks about parental leave.")
    oss.delete("corp-bucket", "kb/docs/note-004.txt")
    second = make_ingestor().ingest(open_source("oss://corp-bucket/kb/docs/"), index_name)
    assert (second.docs_changed, second.docs_deleted, second.docs_unchanged) == (1, 1, 22)
    es.indices.refresh(index=index_name)
    hit = es.search(index=index_name, query={"match": {"text": "parental leave"}})
    assert hit["hits"]["hits"][0]["_source"]["doc_id"] == "note-003.txt"
    assert hit["hits"]["hits"][0]["_source"]["source_uri"] == \
        "oss://corp-bucket/kb/docs/note-003.txt"
