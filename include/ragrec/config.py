"""Settings read from the environment, with the same names everywhere (CLI, DAGs, tests).

Airflow tasks read Connections first (see ``ragrec.airflow.hooks``); these variables are the
fallback and the way to configure the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The Elasticsearch version the project runs locally and pins its client against.
ES_SERVER_VERSION = "8.19.21"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where downloaded artifacts and local service state live.

    ``RAGREC_CACHE_DIR`` wins. Otherwise the user's cache dir; for root it is
    ``/var/cache/ragrec``, because Elasticsearch refuses to run as root and the unprivileged
    user that runs it must be able to read the distribution (``/root`` is private).
    """
    explicit = env.get("RAGREC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if os.geteuid() == 0:
        return Path("/var/cache/ragrec")
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragrec"


@dataclass(frozen=True)
class ElasticsearchSettings:
    """How to reach Elasticsearch. ``url`` unset means: the local node ``ragrec es`` runs."""

    url: str | None = None
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ElasticsearchSettings:
        return cls(
            url=env.get("ES_URL") or None,
            username=env.get("ES_USERNAME") or None,
            password=env.get("ES_PASSWORD") or None,
            api_key=env.get("ES_API_KEY") or None,
            ca_certs=env.get("ES_CA_CERTS") or None,
            verify_certs=_flag(env.get("ES_VERIFY_CERTS"), True),
            request_timeout=float(env.get("ES_REQUEST_TIMEOUT") or 30.0),
        )

    @property
    def is_external(self) -> bool:
        return self.url is not None

    def __repr__(self) -> str:  # never print secrets
        return (
            f"ElasticsearchSettings(url={self.url!r}, username={self.username!r}, "
            f"password={'***' if self.password else None}, "
            f"api_key={'***' if self.api_key else None}, ca_certs={self.ca_certs!r})"
        )


@dataclass(frozen=True)
class LocalNodeSettings:
    """The single-node Elasticsearch that ``ragrec es start`` runs on 127.0.0.1."""

    version: str = ES_SERVER_VERSION
    name: str = "default"
    port: int | None = None
    heap: str = "512m"
    distribution: str | None = None
    home: Path = Path("/var/cache/ragrec")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LocalNodeSettings:
        port = env.get("RAGREC_ES_PORT")
        return cls(
            version=env.get("RAGREC_ES_VERSION") or ES_SERVER_VERSION,
            name=env.get("RAGREC_ES_NODE") or "default",
            port=int(port) if port else None,
            heap=env.get("RAGREC_ES_HEAP") or "512m",
            distribution=env.get("RAGREC_ES_DIST") or None,
            home=cache_dir(env),
        )


@dataclass(frozen=True)
class OssSettings:
    """Object Storage Service access. The Airflow Connection ``oss_default`` maps onto it."""

    endpoint: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    security_token: str | None = None
    connect_timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OssSettings:
        return cls(
            endpoint=env.get("OSS_ENDPOINT") or None,
            access_key_id=env.get("OSS_ACCESS_KEY_ID") or None,
            access_key_secret=env.get("OSS_ACCESS_KEY_SECRET") or None,
            security_token=env.get("OSS_SECURITY_TOKEN") or None,
            connect_timeout=float(env.get("OSS_CONNECT_TIMEOUT") or 30.0),
        )

    def __repr__(self) -> str:  # never print secrets
        return (f"OssSettings(endpoint={self.endpoint!r}, access_key_id={self.access_key_id!r}, "
                f"access_key_secret={'***' if self.access_key_secret else None})")
