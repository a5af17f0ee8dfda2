"""docker-compose.yaml cannot run here (no Docker), so check that it is complete."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT
from ragrec.config import ES_SERVER_VERSION

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def _dockerfile(service: dict):
    build = service["build"]
    if isinstance(build, str):
        return ROOT / build / "Dockerfile"
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def _installs(dockerfile) -> list[str]:
    """The requirement files a Dockerfile's pip installs read, in order."""
    return re.findall(r"pip install[^&]*?-r /opt/ragrec/(\S+)", dockerfile.read_text())
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer"}


def test_every_service_has_image_or_build_healthcheck_and_environment():
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        health = service.get("healthcheck", {})
        assert health.get("test"), f"{name} has no healthcheck"
        if name != "redis":  # the broker takes its settings on its command line
            assert service.get("environment"), f"{name} has no environment"
        if "build" in service:
            assert _dockerfile(service).is_file(), name


def test_airflow_3_components_on_postgres_with_local_executor():
    commands = {}
    for name, service in SERVICES.items():
        command = service.get("command") or []
        if command[:1] == ["airflow"]:
            commands[command[1]] = name
            env = service["environment"]
            # LocalExecutor unless .env chooses another (the "celery" profile's).
            assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
            assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
            assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
            assert env["ES_URL"] == "http://elasticsearch:9200"
            mounts = {v.split(":")[1] for v in service["volumes"] if ":" in v}
            assert {"/opt/airflow/dags", "/opt/ragrec/include"} <= mounts
    assert AIRFLOW_COMMANDS <= commands.keys()
    # Migration, then the model-endpoint pool, before the components start.
    init = " ".join(SERVICES["airflow-init"]["command"])
    assert init.index("airflow db migrate") < init.index("airflow pools set model_endpoint")
    for component in AIRFLOW_COMMANDS:
        depends = SERVICES[commands[component]]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    assert "apache/airflow:3." in (ROOT / "Dockerfile").read_text()


def test_ports_are_published_where_users_connect():
    for name in ("airflow-apiserver", "elasticsearch", "postgres", "model-server",
                 "search-api"):
        assert SERVICES[name].get("ports"), name
    # A server inside a container must listen beyond its own loopback to be published.
    for name in ("model-server", "search-api"):
        command = SERVICES[name]["command"]
        assert command[command.index("--host") + 1] == "0.0.0.0", name


def test_dependencies_name_existing_services_with_health_conditions():
    for name, service in SERVICES.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in ("service_healthy", "service_completed_successfully")


def test_elasticsearch_image_matches_the_server_version_the_project_pins():
    image = SERVICES["elasticsearch"]["image"]
    assert image.endswith(f":{ES_SERVER_VERSION}")
    assert SERVICES["elasticsearch"]["environment"]["discovery.type"] == "single-node"


def test_secrets_come_from_the_environment_not_the_file():
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert str(value).startswith("${"), f"{name}.{key} is written in the file"
    conn = SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert ":${POSTGRES_PASSWORD" in conn


def test_the_celery_profile_adds_a_broker_and_workers_beside_the_local_default():
    """Redis and the workers run only with the "celery" profile; every Airflow component
    (workers included) shares one environment: the executor .env chooses, the broker at the
    redis service, task states in the Postgres metadata DB; the scheduler waits for the
    broker when there is one; Flower is a profile of its own."""
    assert SERVICES["redis"]["profiles"] == ["celery"]
    assert "redis-server" in SERVICES["redis"]["command"]
    worker = SERVICES["airflow-worker"]
    assert worker["profiles"] == ["celery"]
    assert worker["command"] == ["airflow", "celery", "worker"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "inspect ping" in worker["healthcheck"]["test"][1]
    assert SERVICES["flower"]["profiles"] == ["flower"]
    assert SERVICES["flower"]["command"] == ["airflow", "celery", "flower"]
    scheduler = SERVICES["airflow-scheduler"]["environment"]
    for name in ("airflow-worker", "flower", "airflow-apiserver", "airflow-dag-processor"):
        env = SERVICES[name]["environment"]
        for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__BROKER_URL",
                    "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                    "AIRFLOW__API_AUTH__JWT_SECRET"):
            assert env[key] == scheduler[key], (name, key)
    assert scheduler["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert scheduler["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert "@postgres:5432/" in scheduler["AIRFLOW__CELERY__RESULT_BACKEND"]
    broker = SERVICES["airflow-scheduler"]["depends_on"]["redis"]
    assert broker == {"condition": "service_healthy", "required": False}
    example = (ROOT / ".env_example").read_text()
    assert "# AIRFLOW__CORE__EXECUTOR=CeleryExecutor" in example
    assert "# COMPOSE_PROFILES=celery" in example


def test_images_per_role_runtime_without_torch_and_a_trainer_with_it():
    """Every Airflow component, the model server and the search API share the runtime image
    (requirements.txt + the --no-deps wheels, no torch); only the trainer's image installs
    the training requirements; one image name is built from one Dockerfile."""
    images: dict[str, set] = {}
    for service in SERVICES.values():
        if "build" in service:
            images.setdefault(service["image"], set()).add(_dockerfile(service).name)
    assert all(len(files) == 1 for files in images.values()), images
    assert images["ragrec-airflow:latest"] == {"Dockerfile"}
    assert images["ragrec-train:latest"] == {"Dockerfile.train"}
    runtime = _installs(ROOT / "Dockerfile")
    assert runtime == ["requirements.txt", "requirements-nodeps.txt"], runtime
    assert "--no-deps --require-hashes -r /opt/ragrec/requirements-nodeps.txt" in \
        (ROOT / "Dockerfile").read_text()
    assert _installs(ROOT / "Dockerfile.train") == ["requirements-train.txt"]
    pins = {line.split("==")[0].split("[")[0].strip() for line in
            (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))}
    assert not pins & {"torch", "sentence-transformers", "transformers"}, pins
    train = (ROOT / "requirements-train.txt").read_text()
    assert "-r requirements.txt" in train and "torch==" in train
    for name in ("model-server", "search-api", "airflow-scheduler", "airflow-worker"):
        assert SERVICES[name]["image"] == "ragrec-airflow:latest", name
    for dockerfile in ("Dockerfile", "Dockerfile.train"):
        text = (ROOT / dockerfile).read_text()
        for copied in re.findall(r"^COPY \S+ (.+) /opt/ragrec/$", text, re.M):
            for path in copied.split():
                assert (ROOT / path).exists(), (dockerfile, path)
