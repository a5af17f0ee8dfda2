"""Airflow Connections mapped onto ragrec's settings records (``ragrec.config``).

Each ``*_settings`` function reads its Connection when it is defined and falls back to the
record's ``from_env()`` otherwise, so a local ``dag.test()`` needs no set-up. The hooks in
``ragrec.airflow.hooks`` and the task bodies call these; nothing here builds a client.

Connections and the records they map onto (fields: README, "Connections"):

* ``elasticsearch_default`` -> ``ElasticsearchSettings``;
* ``oss_default`` -> ``OssSettings``, and the OSS access of ``RegistrySettings`` (an
  ``oss://`` registry is reached like an ``oss://`` source);
* ``eas_default`` -> ``ModelEndpointSettings`` (host, password, extra ``protocol``) and
  ``EasSettings`` (the control plane, from its extra);
* ``airec_default`` -> ``AirecSettings``;
* ``alerts_webhook``, ``alerts_smtp`` -> ``AlertSettings``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ragrec.config import (
    AirecSettings,
    AlertSettings,
    EasSettings,
    ElasticsearchSettings,
    ModelEndpointSettings,
    OssSettings,
    RegistrySettings,
    SmtpSettings,
)

log = logging.getLogger(__name__)
ELASTICSEARCH, OSS, EAS, AIREC = ("elasticsearch_default", "oss_default", "eas_default",
                                  "airec_default")
ALERTS_WEBHOOK, ALERTS_SMTP = "alerts_webhook", "alerts_smtp"


def optional_connection(conn_id: str):
    """The Airflow Connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError

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


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


# ----------------------------------------------------------------------- Elasticsearch

def _elasticsearch_url(conn: Any) -> str:
    """The node URL(s) of the Connection, comma-separated: extra ``hosts`` (a list or a
    comma-separated string), else host (a name, a URL, or URLs), port and schema."""
    listed = conn.extra_dejson.get("hosts")
    if listed:
        names = listed.split(",") if isinstance(listed, str) else list(listed)
        return ",".join(str(n).strip().rstrip("/") for n in names if str(n).strip())
    host = conn.host or "127.0.0.1"
    if "://" in host:
        return ",".join(h.strip().rstrip("/") for h in host.split(",") if h.strip())
    scheme = conn.schema or (conn.extra_dejson.get("scheme")) or "http"
    port = conn.port or 9200
    return f"{scheme}://{host}:{port}"


def elasticsearch_settings(conn_id: str = ELASTICSEARCH) -> ElasticsearchSettings:
    """The Connection's cluster, else ``ES_URL`` / the local node."""
    env = ElasticsearchSettings.from_env()
    conn = optional_connection(conn_id)
    if conn is None:
        log.info("no connection %r: using ES_URL / the local node", conn_id)
        return env
    extra = conn.extra_dejson
    return replace(
        env,
        url=_elasticsearch_url(conn),
        username=conn.login or None,
        password=conn.password or None,
        api_key=extra.get("api_key") or None,
        ca_certs=extra.get("ca_certs") or None,
        verify_certs=_flag(extra.get("verify_certs", True)),
        request_timeout=float(extra.get("request_timeout", env.request_timeout)),
        sniff=_flag(extra.get("sniff", env.sniff)),
    )


# ----------------------------------------------------------------------- OSS, registry

def oss_settings(conn_id: str = OSS) -> OssSettings:
    """The Connection's endpoint and keys, each falling back to its ``OSS_*`` variable."""
    env = OssSettings.from_env()
    conn = optional_connection(conn_id)
    if conn is None:
        return env
    endpoint = conn.host or env.endpoint
    if endpoint and "://" not in endpoint:
        endpoint = f"{conn.schema or 'https'}://{endpoint}"
    if endpoint and conn.port:
        endpoint = f"{endpoint}:{conn.port}"
    return replace(
        env,
        endpoint=endpoint,
        access_key_id=conn.login or env.access_key_id,
        access_key_secret=conn.password or env.access_key_secret,
        security_token=conn.extra_dejson.get("security_token") or env.security_token,
    )


def registry_settings(oss_conn_id: str = OSS) -> RegistrySettings:
    """The registry root of ``RAGREC_REGISTRY`` (or the default), reached with the OSS
    Connection's access - as sources are."""
    return replace(RegistrySettings.from_env(), oss=oss_settings(oss_conn_id))


# ----------------------------------------------------------------------- model endpoint

def model_endpoint_of(conn: Any, env: ModelEndpointSettings) -> ModelEndpointSettings:
    """A Connection that names a host mapped onto ``env``: its URL, token and protocol."""
    return replace(env, url=host_url(conn, "http"), token=conn.password or None,
                   protocol=conn.extra_dejson.get("protocol") or None)


def model_endpoint_settings(conn_id: str = EAS) -> ModelEndpointSettings:
    """The Connection's inference URL and token, else ``RAGREC_EMBED_URL`` or the model in
    process."""
    env = ModelEndpointSettings.from_env()
    conn = optional_connection(conn_id)
    if conn is None or not conn.host:
        return env
    return model_endpoint_of(conn, env)


def eas_settings(conn_id: str = EAS) -> EasSettings:
    """The PAI-EAS control plane from the Connection's extra, each falling back to its
    ``EAS_*`` variable."""
    env = EasSettings.from_env()
    conn = optional_connection(conn_id)
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


# ----------------------------------------------------------------------- AIRec

def airec_settings(conn_id: str = AIREC) -> AirecSettings:
    """The AIRec instance of the Connection, each field falling back to its ``AIREC_*``
    variable."""
    env = AirecSettings.from_env()
    conn = optional_connection(conn_id)
    if conn is None:
        return env
    extra = conn.extra_dejson
    endpoint = conn.host or env.endpoint
    protocol = extra.get("protocol") or env.protocol
    if endpoint and "://" in endpoint:
        protocol, endpoint = endpoint.split("://", 1)
    if endpoint and conn.port:
        endpoint = f"{endpoint}:{conn.port}"
    return replace(env, endpoint=endpoint, protocol=protocol,
                   access_key_id=conn.login or env.access_key_id,
                   access_key_secret=conn.password or env.access_key_secret,
                   region_id=extra.get("region_id") or env.region_id,
                   instance_id=extra.get("instance_id") or env.instance_id,
                   ranking_model_id=extra.get("ranking_model_id") or env.ranking_model_id,
                   scene_id=extra.get("scene_id") or env.scene_id)


# ----------------------------------------------------------------------- alerts

def _smtp_of(conn: Any) -> SmtpSettings:
    extra = conn.extra_dejson
    recipients = tuple(r.strip() for r in str(extra.get("to", "")).split(",") if r.strip())
    return SmtpSettings(host=conn.host, port=conn.port or 25, username=conn.login or None,
                        password=conn.password or None,
                        starttls=str(extra.get("starttls", "false")).lower() == "true",
                        sender=extra.get("from") or "ragrec@localhost", recipients=recipients)


def alert_settings(webhook_conn_id: str = ALERTS_WEBHOOK,
                   smtp_conn_id: str = ALERTS_SMTP) -> AlertSettings:
    """Each channel from its Connection when that names a host, else from the
    ``RAGREC_ALERT_*`` variables."""
    settings = AlertSettings.from_env()
    webhook = optional_connection(webhook_conn_id)
    if webhook is not None and webhook.host:
        settings = replace(settings, webhook_url=host_url(webhook, "https"),
                           webhook_token=webhook.password or None)
    smtp = optional_connection(smtp_conn_id)
    if smtp is not None and smtp.host:
        settings = replace(settings, smtp=_smtp_of(smtp))
    return settings
