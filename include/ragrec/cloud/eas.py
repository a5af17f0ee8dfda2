"""Deploying a model version to a PAI-EAS service through the official SDK
(``alibabacloud-eas20210701``): describe, update (new model path, rolling update), wait for
the rollout, roll back to an earlier service version.

Endpoint and credentials come from ``ragrec.config.EasSettings`` (environment, or the extra
of the Airflow Connection ``eas_default``: ``control_endpoint``, ``access_key_id``,
``access_key_secret``, ``region_id``, ``cluster_id``, ``service_name``; see
``ragrec.airflow.connections``). Secrets are never logged.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from ragrec.cloud.sdk_errors import sdk_call
from ragrec.config import EasSettings

log = logging.getLogger(__name__)
FAILED_STATES = {"Failed", "Stopped", "DeleteFailed"}


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceState:
    name: str
    status: str
    current_version: int
    latest_version: int
    config: dict

    @property
    def model_version(self) -> str | None:
        return (self.config.get("labels") or {}).get("ragrec_model_version")


class EasDeployer:
    def __init__(self, settings: EasSettings, poll_seconds: float = 5.0,
                 timeout_seconds: float = 900.0):
        missing = [n for n in ("endpoint", "access_key_id", "access_key_secret", "cluster_id",
                               "service_name") if not getattr(settings, n)]
        if missing:
            raise DeployError(f"EAS settings missing: {', '.join(missing)} (EAS_* variables or "
                              "the eas_default connection)")
        from alibabacloud_eas20210701.client import Client
        from alibabacloud_tea_openapi import models as open_api_models

        self.settings = settings
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.client = Client(open_api_models.Config(
            access_key_id=settings.access_key_id, access_key_secret=settings.access_key_secret,
            security_token=settings.security_token, endpoint=settings.endpoint,
            region_id=settings.region_id, protocol=settings.protocol,
            read_timeout=30000, connect_timeout=10000))

    def _call(self, what: str, function):
        return sdk_call(DeployError, f"EAS {what}", function)

    def describe(self) -> ServiceState:
        s = self.settings
        body = self._call("DescribeService", lambda: self.client.describe_service(
            s.cluster_id, s.service_name)).body
        config = json.loads(body.service_config) if body.service_config else {}
        return ServiceState(body.service_name, body.status, int(body.current_version or 0),
                            int(body.latest_version or 0), config)

    def deploy(self, model_uri: str, model_version: str, rollback_on_failure: bool = True
               ) -> tuple[ServiceState, ServiceState]:
        """Points the service at ``model_uri`` (rolling update) and waits until it runs.
        Returns (before, after). A failed rollout is rolled back to the previous version
        (unless told not to) and raised."""
        from alibabacloud_eas20210701 import models

        before = self.describe()
        config = dict(before.config)
        config["model_path"] = model_uri
        config["labels"] = {**(config.get("labels") or {}), "ragrec_model_version": model_version}
        request = models.UpdateServiceRequest(body=json.dumps(config))
        s = self.settings
        self._call("UpdateService", lambda: self.client.update_service(
            s.cluster_id, s.service_name, request))
        log.info("EAS %s: rolling update to %s requested", s.service_name, model_version)
        try:
            after = self.wait_running(newer_than=before.latest_version)
        except DeployError:
            if rollback_on_failure and before.current_version:
                log.warning("EAS %s: rollout failed, rolling back to version %d",
                            s.service_name, before.current_version)
                self.rollback(before.current_version)
            raise
        return before, after

    def rollback(self, version: int) -> ServiceState:
        from alibabacloud_eas20210701 import models

        s = self.settings
        self._call("UpdateServiceVersion", lambda: self.client.update_service_version(
            s.cluster_id, s.service_name, models.UpdateServiceVersionRequest(version=version)))
        return self.wait_running(current=version)

    def wait_running(self, newer_than: int | None = None, current: int | None = None
                     ) -> ServiceState:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            state = self.describe()
            if state.status in FAILED_STATES:
                raise DeployError(f"EAS service {state.name} is {state.status} after the "
                                  "update")
            arrived = (newer_than is None or state.current_version > newer_than) and \
                (current is None or state.current_version == current)
            if state.status == "Running" and arrived:
                return state
            if time.monotonic() > deadline:
                raise DeployError(f"EAS service {state.name} still {state.status} after "
                                  f"{self.timeout_seconds:.0f}s")
            time.sleep(self.poll_seconds)
