"""The local folder source: any name the filesystem holds, and entries that are no files."""

from __future__ import annotations

import os
import random

import pytest

from ragrec.sources import LocalSource, SourceError
from ragrec.sources.key_range import KeyRangeSource
from ragrec.sources.local import key_for_name, name_for_key


def test_every_byte_string_name_gets_a_valid_reversible_key():
    rng = random.Random(3)
    names = [b"caf\xe9.md", b"\xff\xfe", b"a\\b\xe9", b"x\\x41\xfe", b"\\\\", "ü.md".encode()]
    names += [bytes(rng.choice([c for c in range(1, 256) if c != 0x2F])
                    for _ in range(rng.randint(1, 12))) for _ in range(500)]
    keys = [key_for_name(raw) for raw in names]
    for raw, key in zip(names, keys, strict=True):
        key.encode("utf-8")  # valid Unicode: JSON, hashing and Elasticsearch take it
        assert name_for_key(key) == raw or key.encode("utf-8") == raw
    assert len(set(keys)) == len(set(names))  # no two names share a key
    assert key_for_name("ü.md".encode()) == "ü.md"  # valid names are their own key


def test_undecodable_names_are_listed_stated_and_read(tmp_path):
    raw_root = os.fsencode(tmp_path)
    with open(os.path.join(raw_root, b"caf\xe9.md"), "wb") as handle:
        handle.write(b"# Caf\xc3\xa9\n\nespresso\n")
    (tmp_path / "ok.md").write_text("# ok\n")
    source = LocalSource(tmp_path)
    listed = {o.key: o for o in source.list()}
    assert set(listed) == {"caf\\xe9.md", "ok.md"}
    obj = listed["caf\\xe9.md"]
    assert obj.uri.endswith("/caf%E9.md") and obj.problem is None
    assert source.read(obj).startswith(b"# Caf")
    # The batch path (Airflow) passes key ranges between tasks and lists them again.
    assert list(KeyRangeSource(source, "b", "caf\\xe9.md").list()) == [obj]


def test_special_entries_are_listed_with_their_problem(tmp_path):
    (tmp_path / "fine.md").write_text("# fine\n")
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "gone.md")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "inside.md").write_text("# inside\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "linked-folder").symlink_to(outside)
    problems = {o.key: o.problem for o in LocalSource(tmp_path).list()}
    assert problems["fine.md"] is None and problems["elsewhere/inside.md"] is None
    assert problems["pipe.md"][0] == "not_a_regular_file"
    assert problems["loop-a"][0] == problems["loop-b"][0] == "unreadable"
    assert "loops" in problems["loop-a"][1]
    assert problems["dangling.md"] == ("unreadable", problems["dangling.md"][1])
    assert "broken" in problems["dangling.md"][1]
    assert problems["linked-folder"][0] == "not_a_regular_file"


def test_reads_are_bounded_and_keys_stay_inside_the_root(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"x" * 10_000)
    source = LocalSource(tmp_path)
    obj = source.stat("big.txt")
    assert len(source.read(obj, max_bytes=100)) == 101
    assert len(source.read(obj)) == 10_000
    with pytest.raises(SourceError, match="outside"):
        source.stat("../etc/passwd")


def test_listing_is_in_key_order_across_folders_and_ranges_skip_ahead(tmp_path):
    for name in ("b.md", "a/x.md", "a-c.md", "a/y/z.md", "a0.md", "ab.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("# t\n")
    source = LocalSource(tmp_path)
    keys = [o.key for o in source.list()]
    assert keys == sorted(keys) == ["a-c.md", "a/x.md", "a/y/z.md", "a0.md", "ab.md", "b.md"]
    assert [o.key for o in source.list(start_after="a/x.md")] == keys[2:]
    assert [o.key for o in KeyRangeSource(source, "a-c.md", "a0.md").list()] == keys[1:4]
    assert [o.key for o in KeyRangeSource(source, None, "a-c.md").list()] == keys[:1]
