"""deploy/helm/values.yaml cannot be installed here (no Kubernetes, no Helm), so check what
can be: it deploys what docker-compose.yaml's "celery" profile deploys (the executor, the
image's Airflow version, the pool, the settings, every Connection from a secret, the worker
slots), names only values the official chart has, in the types its schema takes, and holds
no secret."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT

VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
COMPOSE_ENV = COMPOSE["services"]["airflow-scheduler"]["environment"]

# Value names of the official chart (apache-airflow/airflow 1.19+, chart/values.yaml) that
# this file may use; a misspelt one would be ignored at the top level and refused below it.
CHART_TOP_LEVEL = {
    "defaultAirflowRepository", "defaultAirflowTag", "defaultAirflowDigest", "airflowVersion",
    "images", "executor", "workers", "config", "env", "secret", "extraEnv", "extraEnvFrom",
    "extraSecrets", "extraConfigMaps", "migrateDatabaseJob", "createUserJob", "redis",
    "postgresql", "flower", "apiServer", "dagProcessor", "triggerer", "scheduler", "data",
    "logs", "dags", "fernetKey", "fernetKeySecretName", "jwtSecret", "jwtSecretName",
    "apiSecretKey", "apiSecretKeySecretName", "pgbouncer", "statsd", "ingress"}
CHART_SUBKEYS = {
    "images": {"airflow", "useDefaultImageForMigration", "migrationsWaitTimeout", "flower",
               "redis", "pgbouncer", "statsd", "gitSync"},
    "workers": {"replicas", "resources", "persistence", "keda", "hpa", "args", "env",
                "command", "nodeSelector", "tolerations", "affinity", "serviceAccount"},
    "migrateDatabaseJob": {"enabled", "command", "args", "useHelmHooks", "applyCustomEnv",
                           "resources", "jobAnnotations", "annotations"},
    "redis": {"enabled", "persistence", "resources", "password", "passwordSecretName"},
    "postgresql": {"enabled", "auth", "image", "primary"},
    "flower": {"enabled", "username", "password", "secretName", "resources"},
    "apiServer": {"enabled", "replicas", "resources", "env", "args", "service", "hpa"},
    "dagProcessor": {"enabled", "replicas", "resources", "env", "args"},
    "triggerer": {"enabled", "replicas", "resources", "persistence", "env"},
}


def _airflow_pin() -> str:
    pins = (ROOT / "requirements.txt").read_text()
    return re.search(r"^apache-airflow==(\S+)$", pins, re.M).group(1)


def test_it_deploys_the_celery_executor_with_the_images_airflow():
    assert VALUES["executor"] == "CeleryExecutor"
    image = re.search(r"FROM apache/airflow:(\S+?)-python", (ROOT / "Dockerfile").read_text())
    assert VALUES["airflowVersion"] == image.group(1) == _airflow_pin()
    assert VALUES["defaultAirflowRepository"] and VALUES["defaultAirflowTag"]
    assert VALUES["images"]["useDefaultImageForMigration"] is False
    assert "COPY --chown=airflow:root dags /opt/airflow/dags" in \
        (ROOT / "Dockerfile").read_text()  # a pod has only the image: the DAGs are in it


def test_the_migration_makes_the_model_endpoint_pool_compose_makes():
    script = VALUES["migrateDatabaseJob"]["args"]
    assert all(isinstance(part, str) for part in script)
    line = script[-1]
    assert line.index("airflow db migrate") < line.index("airflow pools set model_endpoint")
    compose_init = " ".join(COMPOSE["services"]["airflow-init"]["command"])
    slots = re.compile(r"pools set model_endpoint (\d+)")
    assert slots.search(line).group(1) == slots.search(compose_init).group(1)


def test_worker_slots_match_the_compose_workers():
    assert VALUES["workers"]["replicas"] >= 2
    concurrency = re.search(r":-(\d+)\}", COMPOSE_ENV["AIRFLOW__CELERY__WORKER_CONCURRENCY"])
    assert VALUES["config"]["celery"]["worker_concurrency"] == int(concurrency.group(1))


def test_every_connection_compose_passes_comes_from_a_secret():
    from_compose = {k for k in COMPOSE_ENV if k.startswith("AIRFLOW_CONN_")}
    secrets = VALUES["secret"]
    assert all(set(item) == {"envName", "secretName", "secretKey"} for item in secrets)
    assert from_compose <= {item["envName"] for item in secrets}
    compose_flags = {k: v for k, v in COMPOSE_ENV.items()
                     if k in ("HF_HUB_OFFLINE", "SCARF_ANALYTICS", "DO_NOT_TRACK")}
    env = VALUES["env"]
    assert all(set(item) == {"name", "value"} and isinstance(item["value"], str)
               for item in env)
    assert {item["name"]: item["value"] for item in env} == compose_flags


def test_only_the_charts_own_value_names_in_the_schemas_types():
    assert set(VALUES) <= CHART_TOP_LEVEL, set(VALUES) - CHART_TOP_LEVEL
    for key, allowed in CHART_SUBKEYS.items():
        if key in VALUES:
            assert set(VALUES[key]) <= allowed, (key, set(VALUES[key]) - allowed)
    for section, options in VALUES["config"].items():  # airflow.cfg: strings or numbers
        assert all(isinstance(v, str | int | float | bool) for v in options.values()), section
    assert isinstance(VALUES["workers"]["replicas"], int)


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "deploy" / "helm" / "values.yaml").read_text()
    for key in ("password", "fernetKey", "jwtSecret", "apiSecretKey", "webserverSecretKey"):
        assert not re.search(rf"^\s*{key}:\s*\S", text, re.M), key
