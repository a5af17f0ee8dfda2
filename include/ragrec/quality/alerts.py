"""Alert delivery: a Slack-style incoming webhook (JSON ``{"text": ...}``) and e-mail over
SMTP. Plain functions with retries; the Airflow notifier resolves Connections and calls
them. A channel that is not configured is skipped; a configured one that keeps failing
raises, so a lost alert is never silent."""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from ragrec.config import SmtpSettings

log = logging.getLogger(__name__)


class AlertError(RuntimeError):
    pass


@dataclass(frozen=True)
class Alert:
    title: str
    text: str
    severity: str = "error"
    fields: dict = field(default_factory=dict)

    def as_text(self) -> str:
        extra = "\n".join(f"{k}: {v}" for k, v in self.fields.items())
        return f"[ragrec {self.severity}] {self.title}\n{self.text}" + (f"\n{extra}" if extra
                                                                         else "")


def _retry(what: str, call, attempts: int, backoff: float):
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - every failure is retried, then reported
            if attempt == attempts:
                raise AlertError(f"{what} failed after {attempts} attempts: {exc}") from exc
            wait = backoff * 2 ** (attempt - 1)
            log.warning("%s failed (%s), retry %d/%d in %.1fs", what, exc, attempt,
                        attempts - 1, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def send_webhook(url: str, alert: Alert, token: str | None = None, attempts: int = 3,
                 backoff: float = 0.5) -> None:
    import httpx

    payload = {"text": alert.as_text(), "title": alert.title, "severity": alert.severity,
               "fields": {k: str(v) for k, v in alert.fields.items()}}
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def post():
        response = httpx.post(url, json=payload, headers=headers, timeout=10)
        if response.status_code >= 300:
            raise AlertError(f"HTTP {response.status_code}: {response.text[:200]}")

    _retry("alert webhook", post, attempts, backoff)


def send_email(settings: SmtpSettings, alert: Alert, attempts: int = 3,
               backoff: float = 0.5) -> None:
    if not settings.recipients:
        raise AlertError("no e-mail recipients configured for alerts")
    message = EmailMessage()
    message["Subject"] = f"[ragrec {alert.severity}] {alert.title}"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message.set_content(alert.as_text())

    def deliver():
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)

    _retry("alert e-mail", deliver, attempts, backoff)
