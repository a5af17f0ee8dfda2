# Airflow 3 image with ragrec and its pinned dependencies (used by docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt constraints.txt pyproject.toml README.md /opt/ragrec/
COPY --chown=airflow:root include /opt/ragrec/include
RUN pip install --no-cache-dir -r /opt/ragrec/requirements.txt -c /opt/ragrec/constraints.txt \
 && pip install --no-cache-dir --no-deps -e /opt/ragrec
