"""The Connection-reading hook builds the provider's client correctly."""

from __future__ import annotations

import json

from ragrec.airflow.hooks import RagrecElasticsearchHook, RagrecOssHook


def test_connection_fields_map_onto_client_settings(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEARCH_PROD",
        json.dumps({
            "conn_type": "elasticsearch", "host": "es.internal", "port": 9243,
            "schema": "https", "login": "ingest", "password": "s3cret",
            "extra": {"ca_certs": "/etc/ssl/es-ca.pem", "verify_certs": "false",
                      "request_timeout": 12},
        }),
    )
    settings = RagrecElasticsearchHook("search_prod").settings()
    assert settings.url == "https://es.internal:9243"
    assert (settings.username, settings.password) == ("ingest", "s3cret")
    assert settings.ca_certs == "/etc/ssl/es-ca.pem"
    assert settings.verify_certs is False
    assert settings.request_timeout == 12.0
    assert "s3cret" not in repr(settings)


def test_full_url_in_host_and_api_key(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEARCH_CLOUD",
        json.dumps({"conn_type": "elasticsearch", "host": "https://abc.es.example:443/",
                    "extra": {"api_key": "key-123"}}),
    )
    settings = RagrecElasticsearchHook("search_cloud").settings()
    assert settings.url == "https://abc.es.example:443"
    assert settings.api_key == "key-123"


def test_a_cluster_connection_gives_the_client_every_node(monkeypatch, es_url):
    """Extra ``hosts`` names the cluster's nodes (a dead one among them): the provider's
    client gets all of them, sniffs when asked, and goes on through the live node."""
    from ragrec.dev.es_node.node import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_SEARCH_CLUSTER", json.dumps({
        "conn_type": "elasticsearch", "host": "ignored.example",
        "extra": {"hosts": [dead, es_url + "/"], "sniff": "true"}}))
    settings = RagrecElasticsearchHook("search_cluster").settings()
    assert settings.hosts == (dead, es_url) and settings.sniff
    monkeypatch.setenv("AIRFLOW_CONN_SEARCH_CLUSTER", json.dumps({
        "conn_type": "elasticsearch", "host": f"{dead},{es_url}"}))
    client = RagrecElasticsearchHook("search_cluster").get_conn()
    assert {str(n.base_url) for n in client.transport.node_pool.all()} == {dead, es_url}
    for _ in range(4):  # whichever node a request starts on, it is answered
        assert client.info()["version"]["number"].startswith("8.")


def test_hook_client_talks_to_the_real_node(monkeypatch, es_url):
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", es_url)
    client = RagrecElasticsearchHook().get_conn()
    assert client.info()["version"]["number"].startswith("8.")


def test_missing_connection_falls_back_to_es_url(monkeypatch, es_url):
    monkeypatch.delenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", raising=False)
    monkeypatch.setenv("ES_URL", es_url)
    client = RagrecElasticsearchHook().get_conn()
    assert client.ping()


def test_oss_connection_maps_endpoint_and_keys(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OSS_DEFAULT",
        json.dumps({"conn_type": "oss", "host": "oss-cn-hangzhou.aliyuncs.com",
                    "login": "LTAI-key", "password": "oss-secret",
                    "extra": {"security_token": "sts-token"}}),
    )
    settings = RagrecOssHook().settings()
    assert settings.endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    assert (settings.access_key_id, settings.access_key_secret) == ("LTAI-key", "oss-secret")
    assert settings.security_token == "sts-token"
    assert "oss-secret" not in repr(settings)


def test_oss_without_connection_uses_the_environment(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_OSS_DEFAULT", raising=False)
    monkeypatch.setenv("OSS_ENDPOINT", "http://127.0.0.1:9999")
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "ak")
    assert RagrecOssHook().settings().endpoint == "http://127.0.0.1:9999"


def test_endpoint_and_webhook_urls_keep_their_path_and_take_the_port(monkeypatch):
    """A bare host with a path gets the Connection's port after the host, not after the
    path; a full URL with its own port is kept as written."""
    from ragrec.airflow.hooks import RagrecModelEndpointHook
    from ragrec.airflow.notifiers import webhook_target

    monkeypatch.setenv("AIRFLOW_CONN_ALERTS_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": "hooks.example.com/services/T1/B2", "port": 8443,
         "password": "hook-token"}))
    assert webhook_target() == ("https://hooks.example.com:8443/services/T1/B2", "hook-token")
    monkeypatch.setenv("AIRFLOW_CONN_EAS_DEFAULT", json.dumps(
        {"conn_type": "http", "host": "http://10.0.0.5:8000/api/predict/kb/", "port": 9000,
         "password": "eas-token"}))
    url, token, _ = RagrecModelEndpointHook().endpoint()
    assert (url, token) == ("http://10.0.0.5:8000/api/predict/kb", "eas-token")
    monkeypatch.delenv("AIRFLOW_CONN_ALERTS_WEBHOOK")
    monkeypatch.setenv("RAGREC_ALERT_WEBHOOK", "http://127.0.0.1:9/hook")
    assert webhook_target() == ("http://127.0.0.1:9/hook", None)
