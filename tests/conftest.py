"""Test harness: a real Elasticsearch node for the session (or ES_URL), per-test index names,
and an isolated Airflow home with a migrated SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Airflow reads its configuration at import time: give the session its own home first, so
# tests never touch a developer's .airflow/.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="ragrec-test-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("SCARF_ANALYTICS", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
# Model versions the tests register (rec_train's learned rankers among them) go to the
# session's own registry, never the machine's; a test that needs another sets its own.
os.environ["RAGREC_REGISTRY"] = Path(tempfile.mkdtemp(prefix="ragrec-test-registry-")).as_uri()


# Tiers (markers, set here): ``unit`` needs no service; ``integration`` a real
# Elasticsearch node, Airflow metadata DB or model server; ``scheduler`` a whole Airflow
# deployment or the demo end to end. ``pytest -m unit`` is the quick loop.
SERVICE_FIXTURES = {"es_url", "airflow_db", "model_server", "api_model_server"}
SCHEDULER_MODULES = ("test_scheduler_",)
# Work units for ``pytest -n N --dist loadgroup`` (scripts/test): a module (its module
# fixtures stay on one worker: a scheduler module's one deployment), tests/api as one (its
# session stack is built once), a scheduler test elsewhere on its own. Units start longest
# first (seconds on 2 cores, measured), so no worker is left with the longest at the end.
UNIT_SECONDS = {"test_cli_and_demo.py": 250, "test_scheduler_run.py": 360,
                "tests/api": 260, "test_model_lifecycle.py": 170, "tests/dags": 150,
                "test_cli_ingest_search.py": 90, "test_model_server_fuzz.py": 60,
                "tests/edge": 70, "test_model_server.py": 45, "test_packaging.py": 120}


def _is_scheduler(item: pytest.Item) -> bool:
    return bool(item.get_closest_marker("scheduler")) or \
        item.path.name.startswith(SCHEDULER_MODULES)


def _unit(item: pytest.Item) -> str:
    path = item.path.relative_to(ROOT).as_posix()
    if _is_scheduler(item) and not item.path.name.startswith(SCHEDULER_MODULES):
        return item.nodeid
    if path.startswith("tests/api/"):
        return "tests/api"
    return path


def _unit_seconds(unit: str) -> int:
    for key, seconds in UNIT_SECONDS.items():
        if key in unit:
            return seconds
    return 0


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("distributed"):
            continue
        if _is_scheduler(item):
            item.add_marker(pytest.mark.scheduler)
        elif item.get_closest_marker("integration") or \
                SERVICE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
        item.add_marker(pytest.mark.xdist_group(_unit(item)))
    first_seen = {}
    for position, item in enumerate(items):
        first_seen.setdefault(_unit(item), position)
    items.sort(key=lambda item: (-_unit_seconds(_unit(item)), first_seen[_unit(item)]))


def _say(config: pytest.Config, message: str) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[ragrec-tests] {message}", flush=True)


@pytest.fixture(scope="session")
def es_url(request: pytest.FixtureRequest) -> str:
    """URL of the Elasticsearch the tests use: ES_URL if set, else a node started here."""
    external = os.environ.get("ES_URL")
    if external:
        _say(request.config, f"Elasticsearch: external cluster at {external} (ES_URL)")
        yield external.rstrip("/")
        return
    from ragrec.config import LocalNodeSettings
    from ragrec.dev.es_node import LocalNode
    from ragrec.dev.es_node.node import free_port

    settings = replace(
        LocalNodeSettings.from_env(), name=f"pytest-{os.getpid()}", port=free_port(), heap="512m"
    )
    node = LocalNode(settings, log=lambda msg: _say(request.config, msg))
    url = node.start()
    _say(request.config, f"Elasticsearch: local node started by the harness at {url}")
    try:
        yield url
    finally:
        node.destroy()


@pytest.fixture(scope="session")
def local_node_name(es_url: str) -> str | None:
    """Name of the harness's own node (None when the tests run against ES_URL)."""
    return None if os.environ.get("ES_URL") else f"pytest-{os.getpid()}"


@pytest.fixture(scope="session")
def es(es_url: str):
    from ragrec.config import ElasticsearchSettings
    from ragrec.es_client import connect

    settings = replace(ElasticsearchSettings.from_env(), url=es_url)
    client = connect(settings)
    yield client
    client.close()


@pytest.fixture
def index_name(request: pytest.FixtureRequest, es) -> str:
    """A fresh index name per test; every index starting with it is deleted afterwards."""
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"ragrec-test-{slug}-{uuid.uuid4().hex[:8]}"
    yield name
    existing = es.indices.get(index=f"{name}*", allow_no_indices=True, expand_wildcards="all")
    for concrete in existing:
        es.indices.delete(index=concrete, ignore_unavailable=True)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated Airflow metadata DB (SQLite) in the session's AIRFLOW_HOME."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True, capture_output=True, env=os.environ.copy(),
    )
    return _AIRFLOW_HOME


def fresh_cache(folder: Path) -> str:
    """An empty ragrec cache for one test that shares the session's exported ONNX graphs
    (an export is a torch trace of half a minute; a graph is keyed by the model's files, so
    sharing it changes nothing a test checks)."""
    from ragrec.config import cache_dir

    folder.mkdir(parents=True, exist_ok=True)
    shared = cache_dir() / "onnx"
    shared.mkdir(parents=True, exist_ok=True)
    (folder / "onnx").symlink_to(shared, target_is_directory=True)
    return str(folder)


@pytest.fixture
def project_env(es_url: str) -> dict[str, str]:
    """Environment for running the project's commands as a user would, against the harness ES."""
    env = os.environ.copy()
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def embedder():
    """The real base model, in process (loaded once per session)."""
    from ragrec.embedding.in_process import InProcessEmbedder

    return InProcessEmbedder()


@pytest.fixture(scope="session")
def model_tokenizer():
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding.in_process import base_model_dir

    return ModelTokenizer(base_model_dir())


def _ingestor_factory(es, embedder, model_tokenizer):
    from ragrec.sync import IngestOptions, Ingestor

    def build(embedder_override=None, **options):
        options.setdefault("show_progress", False)
        return Ingestor(es, embedder_override or embedder, model_tokenizer,
                        IngestOptions(**options))

    return build


@pytest.fixture
def make_ingestor(es, embedder, model_tokenizer):
    """Builds an Ingestor on the real node; options as keyword arguments."""
    return _ingestor_factory(es, embedder, model_tokenizer)


@pytest.fixture(scope="module")
def make_ingestor_module(es, embedder, model_tokenizer):
    return _ingestor_factory(es, embedder, model_tokenizer)


@pytest.fixture
def cleanup_alias(es):
    """Deletes every index of the aliases a test registers."""
    aliases: list[str] = []
    yield aliases.append
    for alias in aliases:
        names = es.indices.get(index=f"{alias}--*", allow_no_indices=True,
                               expand_wildcards="all")
        for name in names:
            es.indices.delete(index=name, ignore_unavailable=True)


def catalogue_base(name: str) -> Path:
    """The installed folder of catalogue base ``name`` (``scripts/test`` installs the ones
    the tests read and requires them; a bare pytest run without them skips)."""
    from ragrec.embedding import bases

    if not bases.is_installed(bases.CATALOGUE[name]):
        message = f"base {name} is not installed: ragrec models install-base {name}"
        if os.environ.get("RAGREC_TEST_BASES") == "required":
            pytest.fail(message)
        pytest.skip(message)
    return bases.installed(name)


def bundled_model_jar(folder: Path, stem: str, template: str, **fields):
    """A jar laid out as dev.langchain4j's are (``STEM.onnx`` and ``STEM-tokenizer.json`` at
    the top), made of the bundled MiniLM's graph, and a catalogue record (``template``'s,
    with ``fields`` changed) pinned to it: (jar, record)."""
    import dataclasses
    import zipfile

    from ragrec.embedding import bases
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.embedding.onnx_graph import write_graph

    graph = folder / f"{stem}.onnx"
    write_graph(base_model_dir(), graph, "hidden")
    jar = folder / f"langchain4j-embeddings-{stem}.jar"
    with zipfile.ZipFile(jar, "w") as zipped:
        zipped.write(graph, graph.name)
        zipped.write(base_model_dir() / "tokenizer.json", f"{stem}-tokenizer.json")
        zipped.writestr("README", "test jar")
    record = dataclasses.replace(
        bases.CATALOGUE[template], max_length=256, artifact=f"langchain4j-embeddings-{stem}",
        jar_sha256=bases.sha256_of(jar),
        files={"graph": (graph.name, bases.sha256_of(graph)),
               "tokenizer": (f"{stem}-tokenizer.json",
                             bases.sha256_of(base_model_dir() / "tokenizer.json"))},
        **fields)
    return jar, record
