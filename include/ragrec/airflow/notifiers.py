"""Alerts from DAGs: the ``RagrecAlertNotifier`` (task failure callbacks) and ``deliver``
(data-quality alerts), both sending to every configured channel.

Channels: the Connection ``alerts_webhook`` (host: the webhook URL; password: an optional
bearer token) or ``RAGREC_ALERT_WEBHOOK``; the Connection ``alerts_smtp`` (host, port,
login/password; extra ``from``, ``to`` (comma-separated), ``starttls``) or
``RAGREC_ALERT_SMTP`` (``host:port``) with ``RAGREC_ALERT_EMAIL_TO``.
"""

from __future__ import annotations

import logging

from airflow.sdk import BaseNotifier

from ragrec.airflow.connections import ALERTS_SMTP, ALERTS_WEBHOOK, alert_settings
from ragrec.config import SmtpSettings
from ragrec.quality.alerts import Alert, send_email, send_webhook

log = logging.getLogger(__name__)
WEBHOOK_CONN, SMTP_CONN = ALERTS_WEBHOOK, ALERTS_SMTP


def webhook_target() -> tuple[str, str | None] | None:
    """(webhook URL, bearer token), or None when no webhook is configured."""
    settings = alert_settings(WEBHOOK_CONN, SMTP_CONN)
    return (settings.webhook_url, settings.webhook_token) if settings.webhook_url else None


def smtp_settings() -> SmtpSettings | None:
    """The SMTP server alerts are e-mailed through, or None when none is configured."""
    return alert_settings(WEBHOOK_CONN, SMTP_CONN).smtp


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
