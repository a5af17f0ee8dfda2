"""The model registry on file:// and on OSS (through oss2 against the protocol-level server):
register, stages, promote, rollback, immutability, resolving ``registry:`` URIs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from servers.oss_server import OssServer

from conftest import ROOT
from ragrec.config import OssSettings
from ragrec.models.registry import Registry, RegistryError, open_store
from ragrec.models.store import write_bundle
from ragrec.models.uris import load_layout


def _fake_version(root, version: str, reranker: bool = False):
    """A version directory with the layout but tiny stand-in weights (the registry never
    loads models)."""
    encoder = root / f"src-{version}"
    encoder.mkdir(parents=True)
    (encoder / "modules.json").write_text("[]")
    (encoder / "model.safetensors").write_bytes(version.encode() * 100)
    ce = None
    if reranker:
        ce = root / f"ce-{version}"
        ce.mkdir()
        (ce / "config.json").write_text("{}")
    layout = write_bundle(root / version, "kb-minilm", version, encoder, ce,
                          training={"embedder": {"metrics": {"after": {"ndcg@10": 0.7}}}},
                          lineage={"embedder": {"base_model": "all-minilm-l6-v2-base"}})
    return layout.root


def _stage_cycle(registry: Registry, tmp_path):
    v1 = _fake_version(tmp_path, "kb-minilm-v1")
    v2 = _fake_version(tmp_path, "kb-minilm-v2", reranker=True)
    entry = registry.register(str(v1))
    assert entry["version"] == "kb-minilm-v1" and entry["reranker"] is False
    assert entry["metrics"]["embedder"]["metrics"]["after"]["ndcg@10"] == 0.7
    registry.promote("kb-minilm", "kb-minilm-v1")
    registry.register(f"file://{v2}")
    data = registry.show("kb-minilm")
    assert data["stages"] == {"candidate": "kb-minilm-v2", "production": "kb-minilm-v1"}
    registry.promote("kb-minilm", "kb-minilm-v2")
    assert registry.show("kb-minilm")["stages"]["production"] == "kb-minilm-v2"
    data = registry.rollback("kb-minilm")
    assert data["stages"]["production"] == "kb-minilm-v1"
    assert data["history"][-1]["action"] == "rollback"
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("kb-minilm")
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(str(v1))
    with pytest.raises(RegistryError, match="no version"):
        registry.promote("kb-minilm", "kb-minilm-v9")
    with pytest.raises(RegistryError, match="unknown stage"):
        registry.promote("kb-minilm", "kb-minilm-v1", stage="staging")
    return registry


def test_file_registry_stages_and_rollback(tmp_path, monkeypatch):
    root = tmp_path / "registry"
    registry = _stage_cycle(Registry(open_store(f"file://{root}")), tmp_path)
    stored = root / "kb-minilm" / "versions" / "kb-minilm-v2"
    assert (stored / "reranker" / "config.json").is_file()
    monkeypatch.setenv("RAGREC_REGISTRY", f"file://{root}")
    production = load_layout("registry:kb-minilm@production")
    assert production.version == "kb-minilm-v1" and production.root.is_relative_to(root)
    assert load_layout("registry:kb-minilm:kb-minilm-v2").reranker_dir is not None
    assert registry.resolve("kb-minilm@candidate").endswith("kb-minilm-v2")


def test_oss_registry_through_the_sdk(tmp_path, monkeypatch):
    with OssServer({"model-bucket": {}}) as oss:
        monkeypatch.setenv("OSS_ENDPOINT", oss.endpoint)
        monkeypatch.setenv("OSS_ACCESS_KEY_ID", "test-ak")
        monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "test-secret")
        monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path / "cache"))
        registry = _stage_cycle(Registry(open_store("oss://model-bucket/registry",
                                                    OssSettings.from_env())), tmp_path)
        keys = set(oss.objects["model-bucket"])
        assert "registry/kb-minilm/registry.json" in keys
        assert "registry/kb-minilm/versions/kb-minilm-v1/embedder/model.safetensors" in keys
        assert registry.names() == ["kb-minilm"]
        monkeypatch.setenv("RAGREC_REGISTRY", "oss://model-bucket/registry")
        layout = load_layout("registry:kb-minilm@production")  # downloaded into the cache
        assert layout.version == "kb-minilm-v1"
        assert (layout.embedder_dir / "model.safetensors").read_bytes() == \
            b"kb-minilm-v1" * 100


def test_oss_registry_refuses_a_concurrent_change(tmp_path, monkeypatch):
    with OssServer({"model-bucket": {}}) as oss:
        for name, value in (("OSS_ENDPOINT", oss.endpoint), ("OSS_ACCESS_KEY_ID", "test-ak"),
                            ("OSS_ACCESS_KEY_SECRET", "test-secret")):
            monkeypatch.setenv(name, value)
        store = open_store("oss://model-bucket/reg", OssSettings.from_env())
        registry = Registry(store)
        registry.register(str(_fake_version(tmp_path, "kb-minilm-v1")))
        data, tag = store.read("kb-minilm/registry.json")
        oss.put("model-bucket", "reg/kb-minilm/registry.json", b'{"changed": true}')
        with pytest.raises(RegistryError, match="changed while"):
            store.write("kb-minilm/registry.json", data, tag)


def test_cli_register_promote_list_rollback(tmp_path):
    v1, v2 = _fake_version(tmp_path, "kb-minilm-v1"), _fake_version(tmp_path, "kb-minilm-v2")
    registry = f"file://{tmp_path / 'reg'}"

    def cli(*args, ok=True):
        result = subprocess.run([sys.executable, "-m", "ragrec.cli", "models", *args,
                                 "--registry", registry], cwd=ROOT, capture_output=True,
                                text=True)
        assert (result.returncode == 0) is ok, result.stderr
        return result

    cli("register", str(v1))
    cli("promote", "kb-minilm", "kb-minilm-v1")
    cli("register", str(v2))
    cli("promote", "kb-minilm", "kb-minilm-v2")
    rows = json.loads(cli("list", "--json").stdout)
    assert [(r["version"], r["stage"]) for r in rows] == [("kb-minilm-v1", None),
                                                          ("kb-minilm-v2", "production")]
    assert json.loads(cli("rollback", "kb-minilm").stdout)["stages"]["production"] == \
        "kb-minilm-v1"
    failed = cli("promote", "kb-minilm", ok=False)
    assert failed.returncode == 2 and "promote NAME VERSION" in failed.stderr


def test_the_store_knows_no_registry():
    """The registry builds on the store; ``models.uris`` joins them for ``registry:`` URIs,
    so the two never import each other."""
    import ast

    def imported(module: str) -> set[str]:
        tree = ast.parse((ROOT / "include" / "ragrec" / "models" / f"{module}.py").read_text())
        return {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module} | {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
            for alias in node.names}

    assert "ragrec.models.store" in imported("registry")
    assert not {"ragrec.models.registry", "ragrec.models.uris"} & imported("store")
