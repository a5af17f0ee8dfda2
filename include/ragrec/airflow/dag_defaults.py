"""Defaults every ragrec DAG shares: owner, retries with exponential backoff, timeouts, and
an alert to the configured channels when a task fails for good."""

from __future__ import annotations

from datetime import timedelta

from ragrec.airflow.notifiers import RagrecAlertNotifier

DEFAULT_ARGS = {
    "owner": "ragrec",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": [RagrecAlertNotifier()],
}
