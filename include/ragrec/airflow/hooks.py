"""Hooks in the provider shape over ragrec's Connections: Elasticsearch (the provider's
client), OSS, and the model endpoint / PAI-EAS.

The upstream ``ElasticsearchPythonHook`` takes ``hosts=`` and does not read a Connection;
``RagrecElasticsearchHook`` maps the Connection (``elasticsearch_default``) onto it. The
mapping of every Connection onto its settings record - and the fall-back to the environment
without one, so a local ``dag.test()`` needs no set-up - lives in
``ragrec.airflow.connections``; the hooks call it.

``elasticsearch_default`` fields: host (a host name, a full URL, or several URLs of one
cluster, comma-separated), port, schema (``http``/``https``), login/password (basic auth);
extra: ``hosts`` (the cluster's node URLs, a list: they win over host), ``sniff``,
``api_key``, ``ca_certs``, ``verify_certs``, ``request_timeout``.
"""

from __future__ import annotations

from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook
from airflow.sdk import BaseHook
from elasticsearch import Elasticsearch

from ragrec.airflow import connections
from ragrec.config import (
    EasSettings,
    ElasticsearchSettings,
    ModelEndpointSettings,
    OssSettings,
)
from ragrec.es_client import client_options, resolve_hosts


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
        return connections.elasticsearch_settings(self.elasticsearch_conn_id)

    def get_conn(self) -> Elasticsearch:
        settings = self.settings()
        provider_hook = ElasticsearchPythonHook(
            hosts=resolve_hosts(settings), es_conn_args=client_options(settings)
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
        return connections.oss_settings(self.oss_conn_id)

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
        return connections.optional_connection(self.eas_conn_id)

    def endpoint(self) -> tuple[str | None, str | None, dict]:
        """(inference URL, token, extra) of the Connection; URL None: it names no host."""
        conn = self.connection()
        if conn is None or not conn.host:
            return None, None, {}
        settings = connections.model_endpoint_of(conn, ModelEndpointSettings())
        return settings.url, settings.token, conn.extra_dejson

    def settings(self) -> ModelEndpointSettings:
        return connections.model_endpoint_settings(self.eas_conn_id)

    def embedder(self, backend: str | None = None):
        """The Connection's endpoint, else ``RAGREC_EMBED_URL`` or the model in process."""
        from ragrec.embedding import make_embedder

        return make_embedder(backend=backend, settings=self.settings())

    def eas_settings(self) -> EasSettings:
        return connections.eas_settings(self.eas_conn_id)
