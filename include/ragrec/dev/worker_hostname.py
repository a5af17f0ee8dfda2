"""The hostname an Airflow worker reports for the tasks it runs: ``RAGREC_WORKER_NAME`` when
set, else the machine's. Several Celery workers on one machine (``scheduler_run --executor
celery``) each set their own name, so a task instance says which worker ran it. Airflow calls
it through ``[core] hostname_callable = ragrec.dev.worker_hostname.name``; it must give the
same answer on every call (Airflow compares it with what a running task reported)."""

from __future__ import annotations

import socket

from ragrec.config import worker_name


def name() -> str:
    return worker_name() or socket.getfqdn()
