# Airflow 3 image with ragrec, its pinned dependencies and its DAGs: the image of every Airflow
# component in docker-compose.yaml (which mounts ./dags over the copy, for editing) and in the
# official Helm chart (deploy/helm/values.yaml), where the image is all a pod has.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml README.md /opt/ragrec/
COPY --chown=airflow:root include /opt/ragrec/include
RUN pip install --no-cache-dir -r /opt/ragrec/requirements.txt -c /opt/ragrec/constraints.txt \
 && pip install --no-cache-dir --no-deps -e /opt/ragrec
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
