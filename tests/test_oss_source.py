"""The OSS source through the official oss2 SDK against a protocol-level OSS server."""

from __future__ import annotations

import random
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from servers.background import InBackground
from servers.oss_server import EMULATOR_QUIRKS, OssServer

from ragrec.config import OssSettings
from ragrec.jobs.batch_ingest import ingest_batch, plan_interval
from ragrec.sources import SourceError, open_source
from ragrec.sources.key_range import KeyRangeSource
from ragrec.sources.oss import OssSource

FILES = {f"kb/docs/note-{i:03d}.txt": f"Note {i}: the VPN gateway {i}.".encode()
         for i in range(23)}
FILES["kb/docs/sub dir/ümlaut file.md"] = "# Title\n\nkönnen".encode()
FILES["other/ignored.txt"] = b"outside the prefix"


@pytest.fixture
def oss():
    with OssServer({"corp-bucket": dict(FILES)}) as server:
        yield server


def settings(server, secret="test-secret", key_ordered=True):
    return OssSettings(endpoint=server.endpoint, access_key_id="test-ak",
                       access_key_secret=secret, key_ordered=key_ordered)


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
    assert source.stat("note-001.txt").size == len(FILES["kb/docs/note-001.txt"])


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


# -- servers that are not OSS, or that bend it ------------------------------------------------

class NotOss(InBackground):
    """Any other HTTP server: every request gets a 200 web page."""

    def __init__(self):
        class Page(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = b"<html><body>It works!</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_an_endpoint_that_does_not_speak_oss_is_a_clear_error_and_creates_no_index(
        make_ingestor, es, es_url, index_name, cleanup_alias, project_env):
    cleanup_alias(index_name)
    with NotOss() as web:
        source = OssSource.from_uri("oss://corp-bucket/kb/", OssSettings(
            endpoint=web.endpoint, access_key_id="test-ak", access_key_secret="test-secret"))
        with pytest.raises(SourceError, match="did not answer in the OSS protocol"):
            make_ingestor().ingest(source, index_name)
        assert not es.indices.exists_alias(name=index_name)
        assert not es.indices.exists(index=f"{index_name}*", allow_no_indices=False,
                                     expand_wildcards="all")

        env = {**project_env, "ES_URL": es_url, "OSS_ENDPOINT": web.endpoint,
               "OSS_ACCESS_KEY_ID": "test-ak",
               "OSS_ACCESS_KEY_SECRET": "test-secret"}
        run = subprocess.run([sys.executable, "-m", "ragrec.cli", "ingest",
                              "oss://corp-bucket/kb/", "--index", index_name, "--quiet"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "did not answer in the OSS protocol" in run.stderr
    assert "Traceback" not in run.stderr
    assert not es.indices.exists_alias(name=index_name)


@pytest.fixture
def emulator():
    """The same bucket, stored in shuffled order, served with the emulator's quirks; plus a
    key that only a loose prefix match returns."""
    keys = list(FILES) + ["xkb/docs/stray.txt"]
    random.Random(7).shuffle(keys)
    contents = {k: FILES.get(k, b"a stray key outside the prefix") for k in keys}
    with OssServer({"corp-bucket": contents}, quirks=EMULATOR_QUIRKS) as server:
        yield server


def test_listing_and_head_agree_on_fingerprints_on_a_quirky_server(emulator):
    source = OssSource.from_uri("oss://corp-bucket/kb/docs", settings(emulator))
    listed = {o.key: o for o in source.list()}
    assert set(listed) == {k.removeprefix("kb/docs/") for k in FILES if k.startswith("kb/")}
    for key in ("note-001.txt", "sub dir/ümlaut file.md"):
        assert source.stat(key).fingerprint == listed[key].fingerprint
        assert source.stat(key).uri == listed[key].uri


def test_keys_outside_the_prefix_are_never_listed(emulator):
    listed = [o.uri for o in OssSource.from_uri("oss://corp-bucket/kb/", settings(emulator))
              .list()]
    assert "oss://corp-bucket/xkb/docs/stray.txt" not in listed
    assert len(listed) == 24


def test_a_truncated_listing_without_a_continuation_token_is_an_error_not_a_loop(emulator):
    source = OssSource.from_uri("oss://corp-bucket/kb/docs", settings(emulator), page_size=5)
    with pytest.raises(SourceError, match="OSS protocol.*NextContinuationToken"):
        list(source.list())
    assert sum(1 for r in emulator.requests if r["params"].get("list-type") == "2") == 1


def test_batched_runs_on_a_quirky_server_skip_unchanged_documents(
        emulator, make_ingestor, es, index_name, cleanup_alias, embedder, model_tokenizer):
    """The Airflow path plans key ranges and lists each again: on a server that lists in
    storage order (OSS_LISTS_IN_KEY_ORDER=false) the plan sorts, the ranges filter, and
    listing and HEAD fingerprints agree, so a second run re-indexes nothing."""
    cleanup_alias(index_name)
    source = OssSource.from_uri("oss://corp-bucket/kb/docs/",
                                settings(emulator, key_ordered=False))
    plan = plan_interval(es, source, index_name, None, None, batch_size=10)
    assert [b["documents"] for b in plan["batches"]] == [10, 10, 4]
    assert plan["batches"][-1]["last"] == max(
        k.removeprefix("kb/docs/") for k in FILES if k.startswith("kb/"))
    make_ingestor().prepare(index_name)

    def run_all() -> list[dict]:
        return [ingest_batch(es, embedder, model_tokenizer, source, batch, index_name)
                for batch in plan["batches"]]

    first = run_all()
    assert [r["docs_new"] for r in first] == [10, 10, 4]
    second = run_all()
    assert sum(r["docs_unchanged"] for r in second) == 24
    assert sum(r["chunks_indexed"] for r in second) == 0
    replanned = plan_interval(es, source, index_name, None, None, batch_size=10)
    assert replanned["batches"] == [] and replanned["actions"] == {"unchanged": 24}


def test_a_server_that_claims_key_order_but_breaks_it_is_a_clear_error(
        emulator, make_ingestor, index_name, cleanup_alias):
    cleanup_alias(index_name)
    source = OssSource.from_uri("oss://corp-bucket/kb/docs/", settings(emulator))
    with pytest.raises(SourceError, match="claims key order but does not keep it"):
        make_ingestor().ingest(source, index_name)


def test_ranges_start_after_their_first_key_on_a_real_oss_listing(oss):
    source = OssSource.from_uri("oss://corp-bucket/kb/docs/", settings(oss), page_size=5)
    keys = [o.key for o in source.list()]
    assert keys == sorted(keys)
    ranged = KeyRangeSource(source, keys[6], keys[13])
    assert [o.key for o in ranged.list()] == keys[7:14]
    lists = [r for r in oss.requests if r["params"].get("list-type") == "2"]
    assert lists[-2]["params"]["start-after"] == "kb/docs/" + keys[6]
    assert len(lists) - 5 == 2  # two pages of five, then it stops: no listing to the end


def test_a_key_that_is_not_utf8_is_quarantined_not_a_crash(make_ingestor, index_name,
                                                           cleanup_alias):
    """OSS keys are UTF-8; a server that holds other bytes gets its key decoded lossily by
    the SDK, and the object it cannot then read is quarantined with the reason."""
    cleanup_alias(index_name)
    bad = b"kb/caf\xe9.md".decode("utf-8", "surrogateescape")
    with OssServer({"corp-bucket": {"kb/ok.md": b"# ok\n\nfine", bad: b"# x\n\ny"}}) as server:
        source = OssSource.from_uri("oss://corp-bucket/kb", settings(server),
                                    backoff_seconds=0.01)
        summary = make_ingestor().ingest(source, index_name)
    assert summary.docs_seen == 2 and summary.chunks_indexed == 1
    (record,) = summary.quarantined
    assert (record["doc_id"], record["reason"]) == ("caf\ufffd.md", "unreadable")
    assert "NoSuchKey" in record["detail"]


def test_a_source_that_stops_answering_stops_the_run_and_a_rerun_finishes(
        oss, make_ingestor, es, index_name, cleanup_alias):
    from ragrec.sync import SOURCE_OUTAGE_READS, IngestError

    cleanup_alias(index_name)
    keys = sorted(k for k in FILES if k.startswith("kb/docs/"))
    oss.failures[keys[1]] = [500] * 100  # one object the server cannot serve
    for key in keys[12:]:  # then the whole endpoint answers 503
        oss.failures[key] = [503] * 100

    def source():
        return OssSource.from_uri("oss://corp-bucket/kb/docs/", settings(oss),
                                  max_attempts=2, backoff_seconds=0.01)

    with pytest.raises(IngestError) as stopped:
        make_ingestor().ingest(source(), index_name)
    message = str(stopped.value)
    assert "stopped answering" in message and "run the same command again" in message
    assert "503" in message and "HTTP -2" not in message
    # It stopped after a few reads, instead of retrying every remaining object.
    outage_reads = [r for r in oss.requests if r["key"] in keys[12:] and r["method"] == "GET"]
    assert len(outage_reads) == SOURCE_OUTAGE_READS * 2
    # The source is back: the same command finishes, nothing lost, nothing quarantined.
    oss.failures.clear()
    done = make_ingestor().ingest(source(), index_name)
    assert (done.docs_new, done.chunks_indexed, done.docs_quarantined) == (24, 24, 0)


def test_one_object_a_server_cannot_serve_is_quarantined_and_the_run_goes_on(
        oss, make_ingestor, index_name, cleanup_alias):
    cleanup_alias(index_name)
    oss.failures["kb/docs/note-005.txt"] = [500] * 100
    summary = make_ingestor().ingest(OssSource.from_uri(
        "oss://corp-bucket/kb/docs/", settings(oss), max_attempts=2, backoff_seconds=0.01),
        index_name)
    assert (summary.docs_new, summary.docs_quarantined) == (24, 1)
    assert summary.quarantined[0]["doc_id"] == "note-005.txt"
    assert summary.quarantined[0]["reason"] == "unreadable"


def test_an_endpoint_that_does_not_answer_says_so_in_plain_words():
    from ragrec.dev.es_node.node import free_port
    from ragrec.sources import SourceUnavailable

    source = OssSource.from_uri("oss://corp-bucket/kb/", OssSettings(
        endpoint=f"http://127.0.0.1:{free_port()}", access_key_id="ak",
        access_key_secret="sk"), max_attempts=2, backoff_seconds=0.01)
    with pytest.raises(SourceUnavailable) as refused:
        list(source.list())
    assert "no answer from the endpoint" in str(refused.value)
    assert "-2" not in str(refused.value) and "{" not in str(refused.value)


def test_a_hung_endpoint_costs_the_read_timeout_not_the_connect_timeout():
    import socket
    import threading
    import time

    from ragrec.sources import SourceUnavailable

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    threading.Thread(target=lambda: [held.append(listener.accept()) for _ in range(4)],
                     daemon=True).start()  # accepts, never answers
    source = OssSource.from_uri("oss://corp-bucket/kb/", OssSettings(
        endpoint=f"http://127.0.0.1:{listener.getsockname()[1]}", access_key_id="ak",
        access_key_secret="sk", connect_timeout=30.0, read_timeout=0.5),
        max_attempts=2, backoff_seconds=0.01)
    began = time.monotonic()
    with pytest.raises(SourceUnavailable, match="no answer from the endpoint"):
        list(source.list())
    assert time.monotonic() - began < 5  # two attempts of 0.5 s, not of 30
    listener.close()


def test_listing_retries_throttling_and_server_errors(oss):
    oss.failures[""] = [503, 429]  # the first two listing requests
    source = OssSource.from_uri("oss://corp-bucket/kb/docs/", settings(oss),
                                backoff_seconds=0.01, page_size=10)
    assert len(list(source.list())) == 24
    listings = [r for r in oss.requests if r["key"] == ""]
    assert len(listings) == 2 + 3  # two refused, then three pages


def test_a_listing_that_fails_part_way_prunes_nothing(oss, make_ingestor, es, index_name,
                                                      cleanup_alias):
    from ragrec.sources import SourceUnavailable

    cleanup_alias(index_name)

    def source():
        return OssSource.from_uri("oss://corp-bucket/kb/docs/", settings(oss),
                                  max_attempts=2, backoff_seconds=0.01, page_size=10)

    assert make_ingestor().ingest(source(), index_name).docs_new == 24
    oss.failures[""] = [0] + [503] * 100  # the first page answers, the second never does
    with pytest.raises(SourceUnavailable, match="listing"):
        make_ingestor().ingest(source(), index_name)
    es.indices.refresh(index=index_name)
    held = {h["_source"]["doc_id"] for h in es.search(
        index=index_name, size=100, source=["doc_id"])["hits"]["hits"]}
    assert len(held) == 24  # the 14 documents it never listed are still there
