"""Rolling a model version out to the model endpoint (``model_rollout``): register, deploy,
smoke-test, and roll the endpoint back when anything after the deploy fails.

Two deployers with one interface (``serving()``, ``deploy()``, ``rollback()``):

* ``LocalServerDeployer``: ragrec's own model server, swapped through its admin route
  (``POST /admin/model``), zero-downtime.
* ``EasServiceDeployer``: a PAI-EAS service updated through the official SDK
  (``ragrec.cloud.eas.EasDeployer``), rolled back to the previous service version.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import httpx
import numpy as np


class RolloutError(RuntimeError):
    pass


@dataclass(frozen=True)
class Deployment:
    model_version: str
    previous: dict  # what rollback() needs


class LocalServerDeployer:
    def __init__(self, predict_url: str, admin_token: str | None, timeout: float = 300.0):
        if not admin_token:
            raise RolloutError("the local model server needs an admin token for swaps "
                               "(eas_default extra 'admin_token')")
        from ragrec.embedding.model_endpoint import EndpointUrls

        self.urls = EndpointUrls.parse(predict_url)
        self.admin_token = admin_token
        self.timeout = timeout

    def serving(self) -> dict:
        response = httpx.get(self.urls.health, timeout=10)
        response.raise_for_status()
        return response.json()

    def _swap(self, model_uri: str) -> dict:
        response = httpx.post(self.urls.admin, json={"model": model_uri},
                              headers={"Authorization": self.admin_token}, timeout=self.timeout)
        if response.status_code != 200:
            raise RolloutError(f"model swap to {model_uri} refused: HTTP "
                               f"{response.status_code} {response.text[:300]}")
        return response.json()

    def deploy(self, model_uri: str, model_version: str) -> Deployment:
        before = self.serving()
        swapped = self._swap(model_uri)
        if swapped["current"]["version"] != model_version:
            raise RolloutError(f"the server loaded {swapped['current']['version']}, "
                               f"not {model_version}")
        # /health's "root" is where the server loaded the version from: swapping back to it
        # restores exactly what was served.
        return Deployment(model_version, {"version": before.get("version"),
                                          "uri": before.get("root")})

    def rollback(self, previous: dict) -> dict:
        uri = previous.get("uri")
        if not uri:
            raise RolloutError(f"no model URI recorded for {previous.get('version')}: "
                               "cannot roll back")
        return self._swap(uri)["current"]


class EasServiceDeployer:
    def __init__(self, settings):
        from ragrec.cloud.eas import EasDeployer

        self.deployer = EasDeployer(settings)

    def serving(self) -> dict:
        state = self.deployer.describe()
        return {"version": state.model_version, "service_version": state.current_version,
                "status": state.status}

    def deploy(self, model_uri: str, model_version: str) -> Deployment:
        before, after = self.deployer.deploy(model_uri, model_version)
        return Deployment(model_version, {"service_version": before.current_version,
                                          "version": before.model_version})

    def rollback(self, previous: dict) -> dict:
        state = self.deployer.rollback(int(previous["service_version"]))
        return {"version": state.model_version, "service_version": state.current_version}


def smoke_test(embedder, expected_version: str, expected_dims: int, reference=None,
               known_query: str = "how do I reset my password", requests: int = 20,
               max_p99_ms: float = 2000.0, query_reference=None) -> dict:
    """The endpoint serves ``expected_version`` with the right dimensions, answers a known
    query within the latency budget, and (given the model in process as ``reference``)
    returns the same vector the model gives locally; for a version with a query encoder
    (``query_reference``, in process), the endpoint's query vector must match it too."""
    embedder.describe()
    if embedder.model_version != expected_version:
        raise RolloutError(f"endpoint serves {embedder.model_version!r}, expected "
                           f"{expected_version!r}")
    if embedder.dims != expected_dims:
        raise RolloutError(f"endpoint returns {embedder.dims}-d vectors, the model has "
                           f"{expected_dims}")
    timings, vector = [], None
    for _ in range(requests):
        started = time.perf_counter()
        result = embedder.embed([known_query])
        timings.append((time.perf_counter() - started) * 1000)
        if result.errors:
            raise RolloutError(f"known query failed: {result.errors}")
        vector = result.vectors[0]
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(round(0.99 * (len(timings) - 1))))]
    if p99 > max_p99_ms:
        raise RolloutError(f"p99 latency {p99:.0f} ms over the {max_p99_ms:.0f} ms budget")
    agreement = None
    if reference is not None:
        local = reference.embed([known_query]).vectors[0]
        agreement = _cosine(local, vector)
        if agreement < 0.999:
            raise RolloutError(f"endpoint and model disagree on the known query (cosine "
                               f"{agreement:.4f})")
    result = {"model_version": expected_version, "dims": expected_dims,
              "p50_ms": round(statistics.median(timings), 1), "p99_ms": round(p99, 1),
              "cosine_vs_local": None if agreement is None else round(agreement, 5)}
    if query_reference is not None:
        served = embedder.encode([known_query], "query")[0][0]
        local = query_reference.embed([known_query], role="query").vectors[0]
        query_agreement = _cosine(local, served)
        if query_agreement < 0.999:
            raise RolloutError(f"the endpoint's query vector is not the version's query "
                               f"encoder's (cosine {query_agreement:.4f})")
        result["query_cosine_vs_local"] = round(query_agreement, 5)
    return result


def _cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
