"""Past one machine: a 3-node Elasticsearch cluster (512 MB heap a node) started by ragrec's
own launcher for the session, and the helpers the fault tests share. These tests are marked
``distributed``: ``scripts/test-distributed`` runs them (see the README)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace

import pytest

NODES = 3


@pytest.fixture
def report(request):
    """Prints a line past pytest's capture: what a fault did and what the index held after
    it, the record ``scripts/test-distributed`` leaves."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(message: str) -> None:
        with capture.global_and_fixture_disabled():
            print(message, flush=True)

    return say


@pytest.fixture(scope="session")
def cluster(request):
    """The local cluster (``LocalNode`` with 3 members), started once per session; every
    member is running again at the start of each test that asks for ``cluster_es``."""
    from ragrec.config import LocalNodeSettings
    from ragrec.dev.es_node import LocalNode

    settings = replace(LocalNodeSettings.from_env(), name=f"pytest-cluster-{os.getpid()}",
                       nodes=NODES, port=None, heap="512m")
    node = LocalNode(settings, log=lambda _m: None)
    node.start(timeout=300)
    try:
        yield node
    finally:
        node.destroy()


@pytest.fixture
def cluster_es(cluster):
    """A client given every node of the cluster (as ``ES_URL=a,b,c`` would), all members up."""
    from ragrec.config import ElasticsearchSettings
    from ragrec.es_client import connect

    cluster.start(timeout=300)  # members a previous test stopped come back
    client = connect(replace(ElasticsearchSettings(), url=",".join(cluster.urls),
                             request_timeout=60))
    yield client
    client.close()


@pytest.fixture
def cluster_alias(request, cluster_es):
    """Fresh alias names on the cluster (``cluster_alias("clean")``); their indices are
    deleted afterwards."""
    import uuid

    made: list[str] = []

    def make(label: str) -> str:
        made.append(f"ragrec-test-{label}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    cluster = request.getfixturevalue("cluster")
    cluster.start(timeout=300)
    for alias in made:
        for name in cluster_es.indices.get(index=f"{alias}*", allow_no_indices=True,
                                           expand_wildcards="all"):
            cluster_es.indices.delete(index=name, ignore_unavailable=True)


def member_holding(client, cluster, index: str, prirep: str = "p") -> int:
    """The number of the member that holds ``index``'s primary (``"p"``) or replica."""
    shards = client.cat.shards(index=index, format="json")
    names = [s["node"] for s in shards if s["prirep"] == prirep and s.get("node")]
    assert names, shards
    return int(names[0].rsplit("-", 1)[1])


def wait_until(check, timeout: float = 120.0, step: float = 0.2, what: str = "condition"):
    """``check()``'s first true value; an Elasticsearch error (an index whose shards are
    still starting, a node leaving) counts as "not yet"."""
    from elasticsearch import ApiError, TransportError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (ApiError, TransportError):
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} not reached in {timeout:.0f} s")


class AliasWatch(threading.Thread):
    """Polls an alias while a job runs: which index it points at and that index's health,
    so a test can assert it never pointed at a red index."""

    def __init__(self, client, alias: str, step: float = 0.1):
        super().__init__(daemon=True)
        self.client = client.options(request_timeout=10)
        self.alias = alias
        self.step = step
        self.seen: list[tuple[str, str]] = []  # (index, health) when it changed
        self.red: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        from ragrec.indexing import versions

        while not self._done.is_set():
            try:
                target = versions.current_version(self.client, self.alias)
                if target is not None:
                    health = self.client.cluster.health(index=target)["status"]
                    if not self.seen or self.seen[-1] != (target, health):
                        self.seen.append((target, health))
                    if health == "red":
                        self.red.append(target)
            except Exception:  # noqa: BLE001 - a node leaving: the next poll goes elsewhere
                pass
            self._done.wait(self.step)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)
