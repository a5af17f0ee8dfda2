"""Elasticsearch hook that reads an Airflow Connection and returns the provider's client.

The upstream ``ElasticsearchPythonHook`` takes ``hosts=`` and does not read a Connection;
this hook maps the Connection (``elasticsearch_default``) onto it. Without such a Connection
it falls back to ragrec's settings (``ES_URL`` or the local node), so a local ``dag.test()``
needs no set-up.

Connection fields: host (a host name or a full URL), port, schema (``http``/``https``),
login/password (basic auth); extra: ``api_key``, ``ca_certs``, ``verify_certs``,
``request_timeout``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError
from elasticsearch import Elasticsearch

from ragrec.config import ElasticsearchSettings, OssSettings
from ragrec.es_client import client_options, resolve_url


def optional_connection(conn_id: str):
    """The Airflow Connection ``conn_id``, or None when it is not defined."""
    try:
        return BaseHook.get_connection(conn_id)
    except (AirflowNotFoundException, AirflowRuntimeError):
        return None


def host_url(conn: Any, scheme: str) -> str:
    """A Connection's host as a URL: a full URL is kept (its port wins), a bare host gets
    the Connection's schema (else ``scheme``) and its port, if any."""
    from urllib.parse import urlsplit, urlunsplit

    host = conn.host if "://" in conn.host else f"{conn.schema or scheme}://{conn.host}"
    parts = urlsplit(host)
    if conn.port and parts.port is None:
        parts = parts._replace(netloc=f"{parts.netloc}:{conn.port}")
    return urlunsplit(parts).rstrip("/")


def _connection_url(conn: Any) -> str:
    host = conn.host or "127.0.0.1"
    if "://" in host:
        return host.rstrip("/")
    scheme = conn.schema or (conn.extra_dejson.get("scheme")) or "http"
    port = conn.port or 9200
    return f"{scheme}://{host}:{port}"


class RagrecElasticsearchHook(BaseHook):
    """Elasticsearch client from a Connection, built by the provider's hook.

    :param elasticsearch_conn_id: Connection id; ``elasticsearch_default`` by default.
    """

    conn_name_attr = "elasticsearch_conn_id"
    default_conn_name = "elasticsearch_default"
    conn_type = "elasticsearch"
    hook_name = "Elasticsearch (ragrec)"

    def __init__(self, elasticsearch_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def settings(self) -> ElasticsearchSettings:
        env_settings = ElasticsearchSettings.from_env()
        conn = optional_connection(self.elasticsearch_conn_id)
        if conn is None:
            self.log.info("no connection %r: using ES_URL / the local node",
                          self.elasticsearch_conn_id)
            return env_settings
        extra = conn.extra_dejson
        verify = extra.get("verify_certs", True)
        return replace(
            env_settings,
            url=_connection_url(conn),
            username=conn.login or None,
            password=conn.password or None,
            api_key=extra.get("api_key") or None,
            ca_certs=extra.get("ca_certs") or None,
            verify_certs=verify if isinstance(verify, bool) else str(verify).lower() == "true",
            request_timeout=float(extra.get("request_timeout", env_settings.request_timeout)),
        )

    def get_conn(self) -> Elasticsearch:
        settings = self.settings()
        provider_hook = ElasticsearchPythonHook(
            hosts=[resolve_url(settings)], es_conn_args=client_options(settings)
        )
        return provider_hook.get_conn


class RagrecOssHook(BaseHook):
    """OSS settings from the Connection ``oss_default``: host = endpoint (with scheme),
    login = AccessKey ID, password = AccessKey secret; extra ``security_token`` for STS.
    Without the Connection, the ``OSS_*`` environment variables apply.

    :param oss_conn_id: Connection id; ``oss_default`` by default.
    """

    conn_name_attr = "oss_conn_id"
    default_conn_name = "oss_default"
    conn_type = "oss"
    hook_name = "Alibaba Cloud OSS (ragrec)"

    def __init__(self, oss_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.oss_conn_id = oss_conn_id

    def settings(self) -> OssSettings:
        env_settings = OssSettings.from_env()
        conn = optional_connection(self.oss_conn_id)
        if conn is None:
            return env_settings
        endpoint = conn.host or env_settings.endpoint
        if endpoint and "://" not in endpoint:
            endpoint = f"{conn.schema or 'https'}://{endpoint}"
        if endpoint and conn.port:
            endpoint = f"{endpoint}:{conn.port}"
        return replace(
            env_settings,
            endpoint=endpoint,
            access_key_id=conn.login or env_settings.access_key_id,
            access_key_secret=conn.password or env_settings.access_key_secret,
            security_token=conn.extra_dejson.get("security_token")
            or env_settings.security_token,
        )

    def get_conn(self):
        """The configured settings (the SDK client is built per source by OssSource)."""
        return self.settings()


class RagrecModelEndpointHook(BaseHook):
    """The model endpoint from the Connection ``eas_default``.

    host: the inference URL (PAI-EAS ``https://<id>.<region>.pai-eas.aliyuncs.com/api/predict/
    <service>``, or the local model server's ``http://host:port/api/predict/<service>``);
    password: the service token. extra: ``protocol`` (eas/openai), ``admin_token`` (local
    server's model swap), and for the EAS control plane ``access_key_id``,
    ``access_key_secret``, ``region_id``, ``service_name``, ``control_endpoint``.
    Without the Connection, ``RAGREC_EMBED_URL`` or the in-process model applies.

    :param eas_conn_id: Connection id; ``eas_default`` by default.
    """

    conn_name_attr = "eas_conn_id"
    default_conn_name = "eas_default"
    conn_type = "http"
    hook_name = "Model endpoint / PAI-EAS (ragrec)"

    def __init__(self, eas_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.eas_conn_id = eas_conn_id

    def connection(self):
        return optional_connection(self.eas_conn_id)

    def endpoint(self) -> tuple[str | None, str | None, dict]:
        """(inference URL, token, extra); URL None means the in-process model."""
        conn = self.connection()
        if conn is None or not conn.host:
            return None, None, {}
        return host_url(conn, "http"), conn.password or None, conn.extra_dejson

    def embedder(self, backend: str | None = None):
        from ragrec.embedding import make_embedder
        from ragrec.embedding.model_endpoint import ModelEndpoint

        url, token, extra = self.endpoint()
        if url is None:
            return make_embedder(None, backend=backend)
        return ModelEndpoint(url, protocol=extra.get("protocol"), token=token)

    def eas_settings(self):
        from ragrec.cloud.eas import EasSettings

        env = EasSettings.from_env()
        conn = self.connection()
        if conn is None:
            return env
        extra = conn.extra_dejson
        region = extra.get("region_id") or env.region_id
        return replace(
            env,
            endpoint=extra.get("control_endpoint") or env.endpoint,
            access_key_id=extra.get("access_key_id") or env.access_key_id,
            access_key_secret=extra.get("access_key_secret") or env.access_key_secret,
            security_token=extra.get("security_token") or env.security_token,
            region_id=region, cluster_id=extra.get("cluster_id") or region or env.cluster_id,
            service_name=extra.get("service_name") or env.service_name,
        )
