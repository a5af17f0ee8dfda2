"""Defaults every ragrec DAG shares: owner, retries with exponential backoff, timeouts."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_ARGS = {
    "owner": "ragrec",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=2),
}
