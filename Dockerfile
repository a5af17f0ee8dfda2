# The runtime image (no torch): every Airflow component - scheduler, api-server, dag-processor,
# triggerer, Celery workers - and the model server and search API, in docker-compose.yaml and
# in the official Helm chart (deploy/helm/values.yaml), where the image is all a pod has:
# Airflow, ragrec with its pinned runtime dependencies (ONNX Runtime, no torch) and its DAGs.
# Training (torch) has an image of its own: Dockerfile.train.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml README.md /opt/ragrec/
COPY --chown=airflow:root include /opt/ragrec/include
RUN pip install --no-cache-dir -r /opt/ragrec/requirements.txt -c /opt/ragrec/constraints.txt \
 && pip install --no-cache-dir --no-deps --require-hashes -r /opt/ragrec/requirements-nodeps.txt \
 && pip install --no-cache-dir --no-deps -e /opt/ragrec
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
