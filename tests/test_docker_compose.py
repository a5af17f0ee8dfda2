"""docker-compose.yaml cannot run here (no Docker), so check that it is complete."""

from __future__ import annotations

import yaml

from conftest import ROOT
from ragrec.config import ES_SERVER_VERSION

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer"}


def test_every_service_has_image_or_build_healthcheck_and_environment():
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        health = service.get("healthcheck", {})
        assert health.get("test"), f"{name} has no healthcheck"
        assert service.get("environment"), f"{name} has no environment"
        if "build" in service:
            context = ROOT / (service["build"] if isinstance(service["build"], str)
                              else service["build"]["context"])
            assert (context / "Dockerfile").is_file(), name


def test_airflow_3_components_on_postgres_with_local_executor():
    commands = {}
    for name, service in SERVICES.items():
        command = service.get("command") or []
        if command[:1] == ["airflow"]:
            commands[command[1]] = name
            env = service["environment"]
            assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
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
        for key, value in service["environment"].items():
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "TOKEN")):
                assert str(value).startswith("${"), f"{name}.{key} is written in the file"
    conn = SERVICES["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert ":${POSTGRES_PASSWORD" in conn
