"""model_rollout's task bodies: registry, endpoint deployers, smoke test.

The registry is ``RAGREC_REGISTRY`` (or the default) reached through the ``oss_default``
Connection, as sources are; so are the ``oss://`` and ``registry:`` model URIs loaded here.
"""

from __future__ import annotations

import logging

from ragrec.airflow import runtime
from ragrec.airflow.connections import registry_settings

log = logging.getLogger(__name__)


def registry():
    from ragrec.models.registry import open_registry

    return open_registry(registry_settings())


def register(params: dict) -> dict:
    """The version in the registry as ``candidate`` (already registered: reused, since
    versions are immutable and a re-run must not fail on it)."""
    from ragrec.models.uris import load_layout

    layout = load_layout(params["model_uri"], registry_settings())
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
    from ragrec.jobs.rollout import EasServiceDeployer, LocalServerDeployer, RolloutError

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
    from ragrec.jobs.rollout import smoke_test
    from ragrec.models.uris import load_layout

    runtime.encoder.cache_clear()
    endpoint, _ = runtime.encoder()
    layout = load_layout(model["uri"], registry_settings())
    queries = encoder_for(layout.query_encoder_dir) if layout.query_encoder_dir else None
    result = smoke_test(endpoint, model["version"], int(model["dims"]),
                        encoder_for(layout.embedder_dir),
                        known_query=params.get("known_query") or "how do I reset my password",
                        max_p99_ms=float(params.get("max_p99_ms") or 2000),
                        query_reference=queries)
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
