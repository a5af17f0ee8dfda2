"""The model registry: versions with stage aliases, metrics and lineage, stored in object
storage next to the artifacts (``file://`` or ``oss://``).

Layout under the registry root::

    <name>/registry.json             versions, stages, history (the only mutable object)
    <name>/versions/<version>/...    the version directory, copied at registration

Stages are aliases (``candidate``, ``production``); every change is appended to ``history``
so ``rollback`` restores the previous holder of a stage. On ``file://`` a lock file
serialises writers; on ``oss://`` the registry object is re-read and compared (ETag) right
before it is written, and a concurrent change is refused rather than overwritten.

Where the registry is and how OSS is reached come from a ``RegistrySettings``
(``ragrec.config``: the environment; ``ragrec.airflow.connections.registry_settings`` in
DAGs, with the ``oss_default`` Connection's access); the registry reads no environment.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ragrec.config import OssSettings, RegistrySettings
from ragrec.models.store import CARD, RANKER_KIND, ModelNotFound, fetch_model_dir, read_layout

STAGES = ("candidate", "production")


class RegistryError(ValueError):
    pass


class LocalStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def uri(self, key: str) -> str:
        return f"file://{self.root / key}"

    def read(self, key: str) -> tuple[dict | None, str | None]:
        path = self.root / key
        if not path.is_file():
            return None, None
        return json.loads(path.read_text()), None  # writers are serialised by ``locked``

    def write(self, key: str, data: dict, expected_tag: str | None) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(data, indent=2, sort_keys=True))
        partial.rename(path)

    def put_dir(self, local: Path, key: str) -> None:
        target = self.root / key
        if target.exists():
            shutil.rmtree(target)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(local, staging, ignore=shutil.ignore_patterns(".*"))
        staging.rename(target)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/registry.json"))

    @contextmanager
    def locked(self, name: str):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


class OssStore:
    def __init__(self, bucket: str, prefix: str, oss: OssSettings):
        from ragrec.sources.base import SourceError
        from ragrec.sources.oss import OssSource

        try:  # the source's client: same settings checks, STS tokens, timeouts
            source = OssSource(bucket, prefix, oss)
        except SourceError as exc:
            raise RegistryError(f"an oss:// registry needs OSS access: {exc}") from exc
        self.bucket_name, self.prefix = bucket, prefix.strip("/")
        self.bucket = source.bucket

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"oss://{self.bucket_name}/{self._key(key)}"

    def read(self, key: str) -> tuple[dict | None, str | None]:
        import oss2

        try:
            result = self.bucket.get_object(self._key(key))
        except oss2.exceptions.NoSuchKey:
            return None, None
        return json.loads(result.read()), result.etag

    def write(self, key: str, data: dict, expected_tag: str | None) -> None:
        _, current = self.read(key)
        if current != expected_tag:
            raise RegistryError(f"{self.uri(key)} changed while this command ran: retry it")
        self.bucket.put_object(self._key(key), json.dumps(data, indent=2, sort_keys=True))

    def put_dir(self, local: Path, key: str) -> None:
        for path in sorted(local.rglob("*")):
            relative = path.relative_to(local)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                self.bucket.put_object_from_file(self._key(f"{key}/{relative}"), str(path))

    def names(self) -> list[str]:
        import oss2

        found = set()
        for info in oss2.ObjectIteratorV2(self.bucket, prefix=self._key("")):
            if info.key.endswith("/registry.json"):
                found.add(info.key.rsplit("/", 2)[-2])
        return sorted(found)

    @contextmanager
    def locked(self, name: str):
        yield  # optimistic: ``write`` refuses when the object changed underneath


def version_uri(version: str, registry: RegistrySettings | None) -> str | None:
    """Where model ``version`` can be loaded from: ``base`` for the bundled base model,
    ``base:NAME`` for a catalogue base encoder's (``NAME-base``), the artifact URI of a
    version ``registry`` holds, else None (None: no registry)."""
    from ragrec.embedding.bases import BASE_MODEL_VERSION, CATALOGUE, version_of

    if version == BASE_MODEL_VERSION:
        return "base"
    named = next((b.name for b in CATALOGUE.values() if version_of(b) == version), None)
    if named is not None:
        return f"base:{named}"
    if registry is not None:
        return open_registry(registry).find_version(version)
    return None


def open_store(root: str, oss: OssSettings | None = None):
    """The store at ``root`` (``file://`` or a path; ``oss://bucket/prefix`` reached with
    ``oss``)."""
    if root.startswith("oss://"):
        bucket, _, prefix = root.removeprefix("oss://").partition("/")
        return OssStore(bucket, prefix, oss or OssSettings())
    return LocalStore(Path(root.removeprefix("file://")).expanduser())


def open_registry(settings: RegistrySettings) -> Registry:
    """The registry ``settings`` name, reached (and fetching ``oss://`` versions to
    register) with its OSS access."""
    return Registry(open_store(settings.root, settings.oss), oss=settings.oss)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """Versions, stages and history in ``store``; ``oss``: the access ``oss://`` model URIs
    given to ``register`` are fetched with."""

    def __init__(self, store, oss: OssSettings | None = None):
        self.store = store
        self.oss = oss

    def _load(self, name: str) -> tuple[dict, str | None]:
        data, tag = self.store.read(f"{name}/registry.json")
        return data or {"name": name, "versions": {}, "stages": {}, "history": []}, tag

    def names(self) -> list[str]:
        return self.store.names()

    def show(self, name: str) -> dict:
        data, _ = self._load(name)
        if not data["versions"]:
            raise RegistryError(f"no model named {name!r} in the registry")
        return data

    def register(self, model_uri: str, stage: str | None = "candidate") -> dict:
        if str(model_uri).startswith("registry:"):
            model_uri = self.resolve(str(model_uri).removeprefix("registry:"))
        local = fetch_model_dir(model_uri, self.oss)
        if not (local / CARD).is_file():
            read_layout(local)  # a clear error when it is no model at all
            raise RegistryError(f"{model_uri} has no {CARD}: register versions ragrec trained "
                                "(or lay one out with a card)")
        card = json.loads((local / CARD).read_text())
        ranker = card.get("kind") == RANKER_KIND
        if ranker:
            name, version, reranker = card["name"], card["version"], False
        else:
            layout = read_layout(local)
            name, version, reranker = layout.name, layout.version, layout.reranker_dir is not None
        key = f"{name}/versions/{version}"
        with self.store.locked(name):
            data, tag = self._load(name)
            if version in data["versions"]:
                raise RegistryError(f"{name} version {version} is already "
                                    "registered (versions are immutable)")
            self.store.put_dir(local, key)
            data["versions"][version] = {
                "uri": self.store.uri(key), "registered_at": _now(),
                "metrics": card.get("training", {}), "lineage": card.get("lineage", {}),
                "evaluation": card.get("evaluation"), "reranker": reranker,
                **({"kind": RANKER_KIND} if ranker else {}),
            }
            data["history"].append({"at": _now(), "action": "register", "version": version})
            if stage:
                self._set_stage(data, stage, version, "register")
            self.store.write(f"{name}/registry.json", data, tag)
        return data["versions"][version] | {"name": name, "version": version}

    def _set_stage(self, data: dict, stage: str, version: str, action: str) -> None:
        if stage not in STAGES:
            raise RegistryError(f"unknown stage {stage!r}: use one of {STAGES}")
        if version not in data["versions"]:
            raise RegistryError(f"{data['name']} has no version {version!r}")
        previous = data["stages"].get(stage)
        data["stages"][stage] = version
        data["history"].append({"at": _now(), "action": action, "stage": stage,
                                "version": version, "previous": previous})

    def promote(self, name: str, version: str, stage: str = "production") -> dict:
        with self.store.locked(name):
            data, tag = self._load(name)
            self._set_stage(data, stage, version, "promote")
            self.store.write(f"{name}/registry.json", data, tag)
        return data

    def rollback(self, name: str, stage: str = "production") -> dict:
        """The stage goes back to the version that held it before the current one."""
        with self.store.locked(name):
            data, tag = self._load(name)
            current = data["stages"].get(stage)
            if current is None:
                raise RegistryError(f"{name} has no {stage} version to roll back")
            previous = None
            for event in reversed(data["history"]):
                if event.get("stage") == stage and event["version"] == current \
                        and event["action"] in ("promote", "register"):
                    previous = event.get("previous")
                    break
            if previous is None:
                raise RegistryError(f"{name} {stage} has no earlier version to go back to")
            self._set_stage(data, stage, previous, "rollback")
            self.store.write(f"{name}/registry.json", data, tag)
        return data

    def find_version(self, version: str) -> str | None:
        """The artifact URI of ``version`` under any name, or None."""
        for name in self.names():
            data, _ = self._load(name)
            if version in data["versions"]:
                return data["versions"][version]["uri"]
        return None

    def resolve(self, reference: str) -> str:
        """``name@stage`` or ``name:version`` -> the artifact URI."""
        if "@" in reference:
            name, stage = reference.split("@", 1)
            data = self.show(name)
            version = data["stages"].get(stage)
            if version is None:
                raise RegistryError(f"{name} has no {stage} version")
        elif ":" in reference:
            name, version = reference.split(":", 1)
            data = self.show(name)
        else:
            raise RegistryError(f"model reference {reference!r}: use name@stage or "
                                "name:version")
        if version not in data["versions"]:
            raise ModelNotFound(f"{name} has no version {version!r}")
        return data["versions"][version]["uri"]
