"""Registering a model version with PAI's model management through the official SDK,
against a local AI Workspace that checks signatures and registry rules."""

from __future__ import annotations

import pytest
from servers.pai_workspace import PaiWorkspace

from ragrec.cloud.pai_models import PaiModelRegistry, PaiRegistryError
from ragrec.config import PaiSettings
from ragrec.models.store import write_bundle


@pytest.fixture
def layout(tmp_path):
    encoder = tmp_path / "enc"
    encoder.mkdir()
    (encoder / "modules.json").write_text("[]")
    return write_bundle(tmp_path / "v3", "kb-minilm", "kb-minilm-v3", encoder,
                        training={"embedder": {"metrics": {"after": {"ndcg@10": 0.71}}}},
                        lineage={"embedder": {"base_model": "all-minilm-l6-v2-base",
                                              "data": {"sha256": "ab" * 32}}})


def _registry(server, secret="pai-secret") -> PaiModelRegistry:
    return PaiModelRegistry(PaiSettings(endpoint=server.endpoint, access_key_id="pai-ak",
                                        access_key_secret=secret, workspace_id="ws-1",
                                        protocol="http"))


def test_register_creates_the_model_once_and_adds_versions(layout, tmp_path):
    with PaiWorkspace() as server:
        registry = _registry(server)
        first = registry.register_version(layout, "oss://models/kb-minilm/versions/v3/",
                                          stage="candidate")
        assert first["version_name"] == "kb-minilm-v3"
        model = server.models[first["model_id"]]
        assert model["name"] == "kb-minilm" and model["workspace"] == "ws-1"
        stored = model["versions"]["kb-minilm-v3"]
        assert stored["Uri"] == "oss://models/kb-minilm/versions/v3/"
        labels = {label["Key"]: label["Value"] for label in stored["Labels"]}
        assert labels == {"ragrec_version": "kb-minilm-v3", "stage": "candidate",
                          "base_model": "all-minilm-l6-v2-base", "data_sha256": "ab" * 8,
                          "reranker": "false"}
        assert stored["Metrics"]["embedder"]["metrics"]["after"]["ndcg@10"] == 0.71

        encoder = tmp_path / "enc"
        v4 = write_bundle(tmp_path / "v4", "kb-minilm", "kb-minilm-v4", encoder)
        second = registry.register_version(v4, "oss://models/kb-minilm/versions/v4/")
        assert second["model_id"] == first["model_id"]  # found by name, not created again
        assert server.calls.count("CreateModel") == 1
        with pytest.raises(PaiRegistryError, match="ModelVersionAlreadyExists"):
            registry.register_version(v4, "oss://models/kb-minilm/versions/v4/")


def test_signature_and_settings_errors(layout):
    with PaiWorkspace() as server:
        with pytest.raises(PaiRegistryError, match="SignatureDoesNotMatch"):
            _registry(server, secret="wrong").register_version(layout, "oss://m/v3/")
        assert server.models == {}
    with pytest.raises(PaiRegistryError, match="workspace_id"):
        PaiModelRegistry(PaiSettings(endpoint="x", access_key_id="a", access_key_secret="b"))
    assert "s3cret" not in repr(PaiSettings(access_key_secret="s3cret"))
