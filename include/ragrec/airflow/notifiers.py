"""Alerts from DAGs: the ``RagrecAlertNotifier`` (task failure callbacks) and ``deliver``
(data-quality alerts), both sending to every configured channel.

Channels: the Connection ``alerts_webhook`` (host: the webhook URL; password: an optional
bearer token) or ``RAGREC_ALERT_WEBHOOK``; the Connection ``alerts_smtp`` (host, port,
login/password; extra ``from``, ``to`` (comma-separated), ``starttls``) or
``RAGREC_ALERT_SMTP`` (``host:port``) with ``RAGREC_ALERT_EMAIL_TO``.
"""

from __future__ import annotations

import logging
import os

from airflow.sdk import BaseNotifier

from ragrec.airflow.hooks import host_url, optional_connection
from ragrec.quality.alerts import Alert, SmtpSettings, send_email, send_webhook

log = logging.getLogger(__name__)
WEBHOOK_CONN, SMTP_CONN = "alerts_webhook", "alerts_smtp"


def webhook_target() -> tuple[str, str | None] | None:
    conn = optional_connection(WEBHOOK_CONN)
    if conn is not None and conn.host:
        return host_url(conn, "https"), conn.password or None
    url = os.environ.get("RAGREC_ALERT_WEBHOOK")
    return (url, os.environ.get("RAGREC_ALERT_WEBHOOK_TOKEN")) if url else None


def smtp_settings() -> SmtpSettings | None:
    conn = optional_connection(SMTP_CONN)
    if conn is not None and conn.host:
        extra = conn.extra_dejson
        recipients = tuple(r.strip() for r in str(extra.get("to", "")).split(",") if r.strip())
        return SmtpSettings(host=conn.host, port=conn.port or 25, username=conn.login or None,
                            password=conn.password or None,
                            starttls=str(extra.get("starttls", "false")).lower() == "true",
                            sender=extra.get("from") or "ragrec@localhost",
                            recipients=recipients)
    target = os.environ.get("RAGREC_ALERT_SMTP")
    if not target:
        return None
    host, _, port = target.partition(":")
    recipients = tuple(r.strip() for r in os.environ.get("RAGREC_ALERT_EMAIL_TO", "").split(",")
                       if r.strip())
    return SmtpSettings(host=host, port=int(port or 25), recipients=recipients)


def deliver(alert: Alert) -> list[str]:
    """Sends ``alert`` to every configured channel; returns the channels used."""
    sent = []
    webhook = webhook_target()
    if webhook:
        send_webhook(webhook[0], alert, token=webhook[1])
        sent.append("webhook")
    smtp = smtp_settings()
    if smtp:
        send_email(smtp, alert)
        sent.append("email")
    if not sent:
        log.warning("no alert channel configured (%s / %s): %s", WEBHOOK_CONN, SMTP_CONN,
                    alert.title)
    return sent


class RagrecAlertNotifier(BaseNotifier):
    """Sends a templated alert; as ``on_failure_callback`` it reports the failed task."""

    template_fields = ("title", "text")

    def __init__(self, title: str = "{{ dag.dag_id }}.{{ ti.task_id }} failed",
                 text: str = "run {{ run_id }}, try {{ ti.try_number }}: {{ exception }}",
                 severity: str = "error"):
        super().__init__()
        self.title, self.text, self.severity = title, text, severity

    def notify(self, context) -> None:
        ti = context.get("ti")
        fields = {"dag": getattr(ti, "dag_id", ""), "task": getattr(ti, "task_id", ""),
                  "run": context.get("run_id", "")}
        deliver(Alert(self.title, self.text, self.severity, fields))
