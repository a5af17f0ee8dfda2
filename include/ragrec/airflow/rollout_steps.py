"""model_rollout's task bodies: registry, endpoint deployers, smoke test."""

from __future__ import annotations

import logging
import os

from ragrec.airflow import runtime

log = logging.getLogger(__name__)


def registry():
    from ragrec.models.registry import Registry, open_store

    return Registry(open_store(os.environ.get("RAGREC_REGISTRY") or None))


def register(params: dict) -> dict:
    """The version in the registry as ``candidate`` (already registered: reused, since
    versions are immutable and a re-run must not fail on it)."""
    from ragrec.models.store import load_layout

    layout = load_layout(params["model_uri"])
    reg = registry()
    existing = reg.find_version(layout.version)
    if existing is None:
        reg.register(params["model_uri"], stage="candidate")
        existing = reg.find_version(layout.version)
    dims = layout.card.get("dims") or _dims(layout)
    return {"name": layout.name, "version": layout.version, "uri": existing, "dims": dims}


def _dims(layout) -> int:
    from ragrec.embedding.in_process import model_dims

    return model_dims(layout.embedder_dir)


def deployer():
    from ragrec.airflow.hooks import RagrecModelEndpointHook
    from ragrec.rollout import EasServiceDeployer, LocalServerDeployer, RolloutError

    hook = RagrecModelEndpointHook()
    url, _, extra = hook.endpoint()
    target = extra.get("deploy", "local")
    if target == "eas":
        return EasServiceDeployer(hook.eas_settings())
    if url is None:
        raise RolloutError("no model endpoint: set the eas_default Connection")
    return LocalServerDeployer(url, extra.get("admin_token"))


def deploy(model: dict) -> dict:
    deployment = deployer().deploy(model["uri"], model["version"])
    runtime.encoder.cache_clear()
    log.info("endpoint now serves %s (was %s)", model["version"], deployment.previous)
    return {"version": deployment.model_version, "previous": deployment.previous}


def smoke(params: dict, model: dict) -> dict:
    from ragrec.embedding import encoder_for
    from ragrec.models.store import load_layout
    from ragrec.rollout import smoke_test

    runtime.encoder.cache_clear()
    endpoint, _ = runtime.encoder()
    reference = encoder_for(load_layout(model["uri"]).embedder_dir)
    result = smoke_test(endpoint, model["version"], int(model["dims"]), reference,
                        known_query=params.get("known_query") or "how do I reset my password",
                        max_p99_ms=float(params.get("max_p99_ms") or 2000))
    log.info("smoke test passed: %s", result)
    return result


def promote(model: dict) -> dict:
    data = registry().promote(model["name"], model["version"], "production")
    return {"name": model["name"], "production": data["stages"]["production"]}


def rollback(deployed: dict | None) -> dict | None:
    """After a failure past the deploy: the endpoint goes back to what it served before."""
    if not deployed:
        log.info("nothing was deployed: nothing to roll back")
        return None
    restored = deployer().rollback(deployed["previous"])
    runtime.encoder.cache_clear()
    log.warning("rolled the endpoint back to %s", restored)
    return restored
