"""Connections mapped onto the settings records (``ragrec.airflow.connections``): a
Connection wins, its absence falls back to the environment; a DAG-side registry on
``oss://`` is reached with the ``oss_default`` Connection's endpoint and keys."""

from __future__ import annotations

import json

import oss2
import pytest
from servers.oss_server import OssServer

from ragrec.airflow import connections
from ragrec.config import RegistrySettings


def _connection(monkeypatch, name: str, value: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(value))


def _version(tmp_path, version: str):
    """A version directory with ragrec's layout and stand-in weights."""
    from ragrec.models.store import write_bundle

    encoder = tmp_path / f"src-{version}"
    encoder.mkdir(parents=True)
    (encoder / "modules.json").write_text("[]")
    (encoder / "model.safetensors").write_bytes(version.encode() * 10)
    return write_bundle(tmp_path / version, "kb-minilm", version, encoder).root


def test_dag_registry_on_oss_uses_the_oss_default_connection(tmp_path, monkeypatch):
    from ragrec.airflow.rollout_steps import registry
    from ragrec.models.registry import open_registry, version_uri
    from ragrec.models.uris import load_layout

    with OssServer({"model-bucket": {}}, access_key_id="conn-ak",
                   access_key_secret="conn-secret") as oss:
        # The environment names the same server with keys it refuses: only the
        # Connection's keys get in.
        monkeypatch.setenv("OSS_ENDPOINT", oss.endpoint)
        monkeypatch.setenv("OSS_ACCESS_KEY_ID", "env-ak")
        monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "env-secret")
        monkeypatch.setenv("RAGREC_REGISTRY", "oss://model-bucket/reg")
        monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path / "cache"))
        _connection(monkeypatch, "oss_default", {"conn_type": "oss", "host": oss.endpoint,
                                                 "login": "conn-ak",
                                                 "password": "conn-secret"})

        settings = connections.registry_settings()
        assert settings.root == "oss://model-bucket/reg"
        assert (settings.oss.endpoint, settings.oss.access_key_id) == (oss.endpoint, "conn-ak")
        assert "conn-secret" not in repr(settings)

        registry().register(str(_version(tmp_path, "kb-minilm-v1")))
        assert "reg/kb-minilm/registry.json" in oss.objects["model-bucket"]
        assert registry().show("kb-minilm")["stages"] == {"candidate": "kb-minilm-v1"}
        uri = version_uri("kb-minilm-v1", settings)
        assert uri == "oss://model-bucket/reg/kb-minilm/versions/kb-minilm-v1"
        layout = load_layout("registry:kb-minilm@candidate", settings)  # fetched from OSS
        assert (layout.embedder_dir / "model.safetensors").read_bytes() == \
            b"kb-minilm-v1" * 10

        with pytest.raises(oss2.exceptions.OssError):  # the environment's keys alone
            open_registry(RegistrySettings.from_env()).names()


def test_model_endpoint_from_the_connection_else_the_environment(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_EAS_DEFAULT", raising=False)
    monkeypatch.setenv("RAGREC_EMBED_URL", "http://127.0.0.1:9/api/predict/kb")
    monkeypatch.setenv("RAGREC_EMBED_TOKEN", "env-token")
    monkeypatch.setenv("RAGREC_ENCODER_BACKEND", "torch")
    settings = connections.model_endpoint_settings()
    assert (settings.url, settings.token, settings.backend) == (
        "http://127.0.0.1:9/api/predict/kb", "env-token", "torch")
    _connection(monkeypatch, "eas_default", {
        "conn_type": "http", "host": "eas.example/api/predict/kb", "schema": "https",
        "password": "conn-token", "extra": {"protocol": "openai"}})
    settings = connections.model_endpoint_settings()
    assert (settings.url, settings.token, settings.protocol, settings.backend) == (
        "https://eas.example/api/predict/kb", "conn-token", "openai", "torch")
    assert "conn-token" not in repr(settings)


def test_eas_and_airec_settings_take_the_connection_fields(monkeypatch):
    monkeypatch.setenv("EAS_SERVICE_NAME", "from-env")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "shared-ak")
    _connection(monkeypatch, "eas_default", {
        "conn_type": "http", "host": "http://127.0.0.1:8000/api/predict/kb",
        "extra": {"region_id": "cn-hangzhou", "access_key_secret": "eas-secret"}})
    eas = connections.eas_settings()
    assert (eas.service_name, eas.access_key_id, eas.cluster_id) == (
        "from-env", "shared-ak", "cn-hangzhou")
    assert "eas-secret" not in repr(eas)

    _connection(monkeypatch, "airec_default", {
        "conn_type": "http", "host": "http://127.0.0.1", "port": 8080, "login": "ak",
        "password": "airec-secret", "extra": {"instance_id": "airec-1"}})
    airec = connections.airec_settings()
    assert (airec.protocol, airec.endpoint, airec.instance_id) == (
        "http", "127.0.0.1:8080", "airec-1")
    assert airec.configured and "airec-secret" not in repr(airec)


def test_alert_channels_from_connections_else_the_environment(monkeypatch):
    for name in ("AIRFLOW_CONN_ALERTS_WEBHOOK", "AIRFLOW_CONN_ALERTS_SMTP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAGREC_ALERT_SMTP", "mail.internal:2525")
    monkeypatch.setenv("RAGREC_ALERT_EMAIL_TO", "ops@example.com, ,oncall@example.com")
    settings = connections.alert_settings()
    assert settings.webhook_url is None
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.recipients) == (
        "mail.internal", 2525, ("ops@example.com", "oncall@example.com"))
    _connection(monkeypatch, "alerts_smtp", {
        "conn_type": "smtp", "host": "smtp.example.com", "port": 587, "login": "bot",
        "password": "smtp-secret", "extra": {"to": "a@example.com", "starttls": "true"}})
    smtp = connections.alert_settings().smtp
    assert (smtp.host, smtp.port, smtp.username, smtp.starttls, smtp.recipients) == (
        "smtp.example.com", 587, "bot", True, ("a@example.com",))
    assert "smtp-secret" not in repr(connections.alert_settings())
