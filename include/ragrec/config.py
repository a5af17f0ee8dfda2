"""Settings read from the environment, with the same names everywhere (CLI, DAGs, tests).

The one module that reads ``os.environ``: one typed, immutable record per service, each
built by its ``from_env(env=os.environ)``, plus a few single values (``cache_dir``,
``java_homes``, ``airflow_dags_folder``) and the flags ragrec sets for the libraries it
imports (``set_library_defaults``). Airflow tasks read Connections first
(``ragrec.airflow.connections`` maps each onto its record); these variables are the fallback
and the way to configure the CLI. Records holding a secret never print it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

# The Elasticsearch version the project runs locally and pins its client against.
ES_SERVER_VERSION = "8.19.21"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _hidden(secret: str | None) -> str | None:
    """How a secret shows in a ``repr``: whether it is set, never its value."""
    return "***" if secret else None


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _names(value: str | None) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


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
    """How to reach Elasticsearch. ``url`` unset means: the local node (or cluster) that
    ``ragrec es`` runs. ``url`` may name several nodes of one cluster, comma-separated: the
    client spreads requests over them and goes on through the others when one fails;
    ``sniff`` asks the cluster for its nodes at start and after a node fails (off behind a
    load balancer or a cloud endpoint, which publish addresses a client cannot reach)."""

    url: str | None = None
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0
    sniff: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ElasticsearchSettings:
        return cls(
            url=env.get("ES_URL") or None,
            sniff=_flag(env.get("ES_SNIFF"), False),
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

    @property
    def hosts(self) -> tuple[str, ...]:
        """The node URLs ``url`` names (none when it is unset)."""
        return tuple(u.rstrip("/") for u in _names(self.url))

    def __repr__(self) -> str:  # never print secrets
        return (
            f"ElasticsearchSettings(url={self.url!r}, username={self.username!r}, "
            f"password={'***' if self.password else None}, "
            f"api_key={'***' if self.api_key else None}, ca_certs={self.ca_certs!r})"
        )


@dataclass(frozen=True)
class LocalNodeSettings:
    """The Elasticsearch that ``ragrec es start`` runs on 127.0.0.1: one node, or ``nodes``
    nodes forming one cluster (``port`` is the first node's; each has ``heap``)."""

    version: str = ES_SERVER_VERSION
    name: str = "default"
    port: int | None = None
    heap: str = "512m"
    nodes: int = 1
    distribution: str | None = None
    home: Path = Path("/var/cache/ragrec")
    maven: str = "mvn"  # fetches the distribution once (not used with ``distribution``)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LocalNodeSettings:
        port = env.get("RAGREC_ES_PORT")
        return cls(
            version=env.get("RAGREC_ES_VERSION") or ES_SERVER_VERSION,
            name=env.get("RAGREC_ES_NODE") or "default",
            port=int(port) if port else None,
            heap=env.get("RAGREC_ES_HEAP") or "512m",
            nodes=int(env.get("RAGREC_ES_NODES") or 1),
            distribution=env.get("RAGREC_ES_DIST") or None,
            home=cache_dir(env),
            maven=env.get("RAGREC_MVN") or "mvn",
        )


@dataclass(frozen=True)
class IndexLayoutSettings:
    """Shards and replicas of every index ragrec creates. ``replicas`` is a count, or a
    range ``min-max`` (or ``0-all``) that Elasticsearch keeps to the data nodes there are
    (``auto_expand_replicas``): the default ``0-1`` has no replica on a single node (green)
    and one on a cluster, so losing a node loses no shard."""

    shards: int = 1
    replicas: str = "0-1"
    language: str | None = None  # chunk indexes: en | zh | auto (``indexing.language``)

    def __post_init__(self) -> None:
        low, dash, high = self.replicas.partition("-")
        if self.shards < 1 or not (low.isdigit() and (not dash or high.isdigit()
                                                       or high == "all")):
            raise ValueError(f"index layout: {self.shards} shards and replicas "
                             f"{self.replicas!r}; shards must be at least 1 and replicas a "
                             "count (1) or a range (0-1, 0-all)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> IndexLayoutSettings:
        return cls(shards=int(env.get("RAGREC_INDEX_SHARDS") or 1),
                   replicas=(env.get("RAGREC_INDEX_REPLICAS") or "0-1").strip(),
                   language=(env.get("RAGREC_LANGUAGE") or "").strip() or None)

    def index_settings(self) -> dict:
        """The ``settings`` of an index created with this layout."""
        if self.replicas.isdigit():
            return {"number_of_shards": self.shards, "number_of_replicas": int(self.replicas)}
        return {"number_of_shards": self.shards, "auto_expand_replicas": self.replicas}


def java_homes(env: Mapping[str, str] = os.environ) -> list[Path]:
    """The JDKs the environment names for the local node, in the order they are tried:
    ``ES_JAVA_HOME``, then ``JAVA_HOME``."""
    return [Path(env[var]) for var in ("ES_JAVA_HOME", "JAVA_HOME") if env.get(var)]


@dataclass(frozen=True)
class OssSettings:
    """Object Storage Service access. The Airflow Connection ``oss_default`` maps onto it."""

    endpoint: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    security_token: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # longest wait for the next bytes of an answer
    key_ordered: bool = True  # OSS lists keys in UTF-8 order; some S3/OSS-like servers don't

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OssSettings:
        return cls(
            endpoint=env.get("OSS_ENDPOINT") or None,
            access_key_id=env.get("OSS_ACCESS_KEY_ID") or None,
            access_key_secret=env.get("OSS_ACCESS_KEY_SECRET") or None,
            security_token=env.get("OSS_SECURITY_TOKEN") or None,
            connect_timeout=float(env.get("OSS_CONNECT_TIMEOUT") or 10.0),
            read_timeout=float(env.get("OSS_READ_TIMEOUT") or 20.0),
            key_ordered=_flag(env.get("OSS_LISTS_IN_KEY_ORDER"), True),
        )

    def __repr__(self) -> str:  # never print secrets
        return (f"OssSettings(endpoint={self.endpoint!r}, access_key_id={self.access_key_id!r}, "
                f"access_key_secret={'***' if self.access_key_secret else None})")


@dataclass(frozen=True)
class RegistrySettings:
    """The model registry: its root (``file://`` or ``oss://``) and the OSS access an
    ``oss://`` root - and the ``oss://`` versions it holds - are reached with."""

    root: str
    oss: OssSettings = field(default_factory=OssSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RegistrySettings:
        return cls(root=env.get("RAGREC_REGISTRY") or f"file://{cache_dir(env) / 'registry'}",
                   oss=OssSettings.from_env(env))


@dataclass(frozen=True)
class ModelEndpointSettings:
    """Which encoder turns text into vectors: the model endpoint at ``url`` (the project's
    model server or PAI-EAS; ``protocol`` eas/openai, None: told by the URL), else the model
    at ``model_dir`` (None: the bundled base model) in process on ``backend`` (None: the
    default runtime). ``tokenizer_dir``: the tokenizer chunks are measured with when
    embedding through an endpoint (None: the base model's)."""

    url: str | None = None
    token: str | None = None
    protocol: str | None = None
    backend: str | None = None
    tokenizer_dir: Path | None = None
    model_dir: Path | None = None
    base_model: str | None = None  # an entry of ``embedding.bases`` (None: the bundled one)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ModelEndpointSettings:
        base = (env.get("RAGREC_BASE_MODEL") or "").strip()
        return cls(url=env.get("RAGREC_EMBED_URL") or None,
                   token=env.get("RAGREC_EMBED_TOKEN") or None,
                   backend=env.get("RAGREC_ENCODER_BACKEND") or None,
                   tokenizer_dir=_path(env.get("RAGREC_TOKENIZER_DIR")),
                   model_dir=_path(env.get("RAGREC_MODEL_DIR")),
                   base_model=None if base in ("", "minilm") else base)

    def __repr__(self) -> str:  # never print secrets
        return (f"ModelEndpointSettings(url={self.url!r}, token={_hidden(self.token)}, "
                f"protocol={self.protocol!r}, backend={self.backend!r})")


@dataclass(frozen=True)
class ServeModelSettings:
    """``ragrec serve-model``: the callers' token, the model-swap token (swaps off when
    unset) and the runtime it serves on."""

    token: str | None = None
    admin_token: str | None = None
    backend: str = "onnx"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServeModelSettings:
        return cls(token=env.get("RAGREC_SERVE_TOKEN") or None,
                   admin_token=env.get("RAGREC_ADMIN_TOKEN") or None,
                   backend=env.get("RAGREC_SERVE_BACKEND") or "onnx")

    def __repr__(self) -> str:  # never print secrets
        return (f"ServeModelSettings(token={_hidden(self.token)}, "
                f"admin_token={_hidden(self.admin_token)}, backend={self.backend!r})")


@dataclass(frozen=True)
class TrainingDeviceSettings:
    """``ragrec train``: the torch device (None: ``cuda`` when present, else ``cpu``) and the
    precision (``auto``: bfloat16 autocast where the hardware has it, ``fp32``, ``bf16``)."""

    device: str | None = None
    precision: str = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TrainingDeviceSettings:
        return cls(device=env.get("RAGREC_TRAIN_DEVICE") or None,
                   precision=env.get("RAGREC_TRAIN_PRECISION") or "auto")


@dataclass(frozen=True)
class LlmSettings:
    """``/ask``'s chat model: any OpenAI-compatible API (DashScope compatible mode, vLLM, a
    llama.cpp server)."""

    url: str  # base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    max_tokens: int = 512

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LlmSettings | None:
        """None when ``RAGREC_LLM_URL`` is unset: answers are extractive."""
        url = env.get("RAGREC_LLM_URL")
        if not url:
            return None
        return cls(url=url.rstrip("/"), model=env.get("RAGREC_LLM_MODEL") or "qwen-plus",
                   api_key=env.get("RAGREC_LLM_API_KEY") or env.get("DASHSCOPE_API_KEY")
                   or None)

    def __repr__(self) -> str:  # never print the key
        return (f"LlmSettings(url={self.url!r}, model={self.model!r}, "
                f"api_key={_hidden(self.api_key)})")


@dataclass(frozen=True)
class ApiSettings:
    """``ragrec serve-api``: the alias it serves, the callers' bearer token (auth off when
    unset), the largest request body, the question-passage cosine ``/ask`` needs to answer,
    the chat model (None: extractive answers) and how long conversations are kept."""

    index: str = "ragrec-kb"
    token: str | None = None
    max_body_bytes: int = 256 * 1024
    min_support: float = 0.3  # best question-passage cosine needed to answer
    llm: LlmSettings | None = None
    chat_retention_days: float = 30.0  # stored conversation turns expire after this
    explore: float = 0.0  # share of /search answers that swap two shown results

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ,
                 index: str | None = None) -> ApiSettings:
        return cls(index=index or env.get("RAGREC_API_INDEX") or "ragrec-kb",
                   token=env.get("RAGREC_API_TOKEN") or None,
                   min_support=float(env.get("RAGREC_ANSWER_MIN_SUPPORT") or 0.3),
                   llm=LlmSettings.from_env(env),
                   chat_retention_days=float(env.get("RAGREC_CHAT_RETENTION_DAYS") or 30),
                   explore=float(env.get("RAGREC_EXPLORE") or 0))

    def __repr__(self) -> str:  # never print secrets
        return (f"ApiSettings(index={self.index!r}, token={_hidden(self.token)}, "
                f"min_support={self.min_support}, llm={self.llm!r}, explore={self.explore})")


@dataclass(frozen=True)
class SmtpSettings:
    """An SMTP server alerts are e-mailed through, and who gets them."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "ragrec@localhost"
    recipients: tuple[str, ...] = ()
    timeout: float = 10.0

    def __repr__(self) -> str:  # never print the password
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, username={self.username!r},"
                f" recipients={self.recipients!r})")


@dataclass(frozen=True)
class AlertSettings:
    """Where DAG alerts go: a Slack-style webhook (with an optional bearer token) and/or
    e-mail; a channel left None is not used. From the environment, SMTP is ``host[:port]``
    with no login, no STARTTLS, from ``ragrec@localhost``."""

    webhook_url: str | None = None
    webhook_token: str | None = None
    smtp: SmtpSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AlertSettings:
        url = env.get("RAGREC_ALERT_WEBHOOK") or None
        target = env.get("RAGREC_ALERT_SMTP")
        smtp = None
        if target:
            host, _, port = target.partition(":")
            smtp = SmtpSettings(host=host, port=int(port or 25),
                                recipients=_names(env.get("RAGREC_ALERT_EMAIL_TO")))
        return cls(webhook_url=url,
                   webhook_token=(env.get("RAGREC_ALERT_WEBHOOK_TOKEN") or None) if url else None,
                   smtp=smtp)

    def __repr__(self) -> str:  # never print secrets
        return (f"AlertSettings(webhook_url={self.webhook_url!r}, "
                f"webhook_token={_hidden(self.webhook_token)}, smtp={self.smtp!r})")


@dataclass(frozen=True)
class AirecSettings:
    """An AIRec (AI Recommendation) instance items are pushed to, and the ranking model
    pointed at ragrec's endpoint; the key falls back to ``ALIBABA_CLOUD_ACCESS_KEY_*``."""

    endpoint: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    security_token: str | None = None
    region_id: str | None = None
    instance_id: str | None = None
    ranking_model_id: str | None = None
    scene_id: str = "ragrec"
    protocol: str = "https"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AirecSettings:
        return cls(
            endpoint=env.get("AIREC_ENDPOINT") or None,
            access_key_id=env.get("AIREC_ACCESS_KEY_ID")
            or env.get("ALIBABA_CLOUD_ACCESS_KEY_ID") or None,
            access_key_secret=env.get("AIREC_ACCESS_KEY_SECRET")
            or env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET") or None,
            region_id=env.get("AIREC_REGION_ID") or None,
            instance_id=env.get("AIREC_INSTANCE_ID") or None,
            ranking_model_id=env.get("AIREC_RANKING_MODEL_ID") or None,
            scene_id=env.get("AIREC_SCENE_ID") or "ragrec",
            protocol=env.get("AIREC_PROTOCOL") or "https",
        )

    @property
    def configured(self) -> bool:
        return bool(self.endpoint and self.instance_id and self.access_key_id
                    and self.access_key_secret)

    def __repr__(self) -> str:  # never print the secret
        return (f"AirecSettings(endpoint={self.endpoint!r}, instance_id={self.instance_id!r}, "
                f"access_key_id={self.access_key_id!r}, access_key_secret="
                f"{_hidden(self.access_key_secret)})")


@dataclass(frozen=True)
class EasSettings:
    """The PAI-EAS control plane a model version is deployed through: endpoint, AccessKey
    (falls back to ``ALIBABA_CLOUD_ACCESS_KEY_*``), cluster (falls back to the region) and
    the service to update."""

    endpoint: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    security_token: str | None = None
    region_id: str | None = None
    cluster_id: str | None = None
    service_name: str | None = None
    protocol: str = "https"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> EasSettings:
        region = env.get("EAS_REGION_ID") or None
        return cls(
            endpoint=env.get("EAS_ENDPOINT") or None,
            access_key_id=env.get("EAS_ACCESS_KEY_ID") or env.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
            or None,
            access_key_secret=env.get("EAS_ACCESS_KEY_SECRET")
            or env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET") or None,
            security_token=env.get("EAS_SECURITY_TOKEN") or None,
            region_id=region, cluster_id=env.get("EAS_CLUSTER_ID") or region,
            service_name=env.get("EAS_SERVICE_NAME") or None,
            protocol=env.get("EAS_PROTOCOL") or "https",
        )

    def __repr__(self) -> str:  # never print the secret
        return (f"EasSettings(endpoint={self.endpoint!r}, access_key_id={self.access_key_id!r}, "
                f"access_key_secret={_hidden(self.access_key_secret)}, "
                f"cluster_id={self.cluster_id!r}, service_name={self.service_name!r})")


@dataclass(frozen=True)
class PaiSettings:
    """The PAI AI Workspace whose model management registers ragrec's model versions."""

    endpoint: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = None
    workspace_id: str | None = None
    region_id: str | None = None
    protocol: str = "https"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PaiSettings:
        return cls(
            endpoint=env.get("PAI_WORKSPACE_ENDPOINT") or None,
            access_key_id=env.get("ALIBABA_CLOUD_ACCESS_KEY_ID") or None,
            access_key_secret=env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET") or None,
            workspace_id=env.get("PAI_WORKSPACE_ID") or None,
            region_id=env.get("PAI_REGION_ID") or None,
            protocol=env.get("PAI_PROTOCOL") or "https",
        )

    def __repr__(self) -> str:  # never print the secret
        return (f"PaiSettings(endpoint={self.endpoint!r}, access_key_id={self.access_key_id!r}, "
                f"access_key_secret={_hidden(self.access_key_secret)}, "
                f"workspace_id={self.workspace_id!r})")


@dataclass(frozen=True)
class DagSettings:
    """What the DAGs use when a Param is left empty: ``source``, the URI ``kb_ingest`` reads
    (None: the bundled sample documents); ``golden_dir``, the golden query set of the
    ``kb_reindex`` gate and ``quality_monitor`` (None: no gate, no golden check); and
    ``quality_docs``, where the Great Expectations Data Docs sites are written."""

    source: str | None = None
    golden_dir: Path | None = None
    quality_docs: Path = Path("/var/cache/ragrec/data-docs")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DagSettings:
        return cls(source=env.get("RAGREC_SOURCE") or None,
                   golden_dir=_path(env.get("RAGREC_GOLDEN_DIR")),
                   quality_docs=Path(env.get("RAGREC_QUALITY_DOCS")
                                     or cache_dir(env) / "data-docs"))


def cli_debug(env: Mapping[str, str] = os.environ) -> bool:
    """``RAGREC_DEBUG``: the CLI shows an unexpected error's traceback, not one line."""
    return bool(env.get("RAGREC_DEBUG"))


def worker_name(env: Mapping[str, str] = os.environ) -> str | None:
    """The name an Airflow worker reports as its task instances' hostname
    (``RAGREC_WORKER_NAME``; None: the machine's), for several workers on one machine."""
    return env.get("RAGREC_WORKER_NAME") or None


def airflow_dags_folder(env: Mapping[str, str] = os.environ) -> Path | None:
    """Airflow's DAG folder (``AIRFLOW__CORE__DAGS_FOLDER``), None when unset."""
    return _path(env.get("AIRFLOW__CORE__DAGS_FOLDER"))


# Set before importing a library, never over the caller's value: no model-hub lookups (they
# would hang on a closed network), no telemetry, no notices or progress bars.
HF_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
SENTENCE_TRANSFORMERS_QUIET = {**HF_OFFLINE, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
UNSTRUCTURED_OFFLINE = {"DO_NOT_TRACK": "true", "SCARF_NO_ANALYTICS": "true",
                        "UNSTRUCTURED_DISABLE_NOTICE": "1", "HF_HUB_OFFLINE": "1",
                        "TRANSFORMERS_OFFLINE": "1"}
GREAT_EXPECTATIONS_OFFLINE = {"GX_ANALYTICS_ENABLED": "False"}


def set_library_defaults(flags: Mapping[str, str],
                         env: MutableMapping[str, str] = os.environ) -> None:
    """Sets each of ``flags`` that the environment does not set already."""
    for name, value in flags.items():
        env.setdefault(name, value)
