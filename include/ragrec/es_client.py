"""One way to build an Elasticsearch client, for the CLI, the library and the Airflow hook.

The client is given every node it knows of (``ES_URL``'s list, or each member of the local
cluster): the transport spreads requests over them, marks a node that fails dead for a while
and sends the request to another, so losing one node of a cluster costs a retry, not the run.
With ``sniff`` it also asks the cluster for its nodes at start and after a failure."""

from __future__ import annotations

from typing import Any

from elasticsearch import BadRequestError, Elasticsearch
from elasticsearch.serializer import OrjsonSerializer

from ragrec.config import ElasticsearchSettings, LocalNodeSettings


class ElasticsearchNotConfigured(RuntimeError):
    pass


def client_options(settings: ElasticsearchSettings) -> dict[str, Any]:
    """Keyword arguments for ``Elasticsearch(hosts, **options)`` (auth, TLS, timeouts, retries)."""
    options: dict[str, Any] = {
        "request_timeout": settings.request_timeout,
        "retry_on_timeout": True,
        "max_retries": 3,
        # orjson writes float32 vectors straight from numpy, ~20x faster than json.dumps
        # of Python floats and with shorter numbers (ES stores float32 anyway).
        "serializer": OrjsonSerializer(),
    }
    if settings.sniff:
        options.update(sniff_on_start=True, sniff_on_node_failure=True,
                       min_delay_between_sniffing=10)
    if settings.api_key:
        options["api_key"] = settings.api_key
    elif settings.username:
        options["basic_auth"] = (settings.username, settings.password or "")
    if settings.ca_certs:
        options["ca_certs"] = settings.ca_certs
    if not settings.verify_certs:
        options["verify_certs"] = False
        options["ssl_show_warn"] = False
    return options


def resolve_hosts(settings: ElasticsearchSettings,
                  node: LocalNodeSettings | None = None) -> list[str]:
    """The nodes ES_URL names if set, else every member of the running local cluster."""
    if settings.hosts:
        return list(settings.hosts)
    from ragrec.dev.es_node import LocalNode  # local import: only needed without ES_URL

    urls = LocalNode(node or LocalNodeSettings.from_env(), log=lambda _msg: None).urls
    if not urls:
        raise ElasticsearchNotConfigured(
            "no Elasticsearch to talk to: start the local node with `ragrec es start`, "
            "or set ES_URL to an existing cluster"
        )
    return urls


def connect(settings: ElasticsearchSettings | None = None) -> Elasticsearch:
    settings = settings or ElasticsearchSettings.from_env()
    return Elasticsearch(resolve_hosts(settings), **client_options(settings))


def create_index_once(client: Elasticsearch, name: str, **body) -> bool:
    """Creates index ``name`` unless it exists; True when this call created it. Workers
    running side by side (mapped tasks on several Celery workers, API replicas) may race to
    create the same index: losing that race is not an error."""
    if client.indices.exists(index=name):
        return False
    try:
        client.indices.create(index=name, **body)
    except BadRequestError as exc:
        if exc.error != "resource_already_exists_exception":
            raise
        return False
    return True
