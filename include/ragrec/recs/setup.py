"""What ``/recommend`` serves with: ``RecSettings`` (the shipped defaults) and the live
setup ``rec_train`` tuned on the deployment's own log, kept in the feature table's
``_meta`` (``rec_setup``: the blend weights, their validation figures and the baseline's,
and the learned ranker's version when it won) and laid over the defaults when a request is
served."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from elasticsearch import Elasticsearch, NotFoundError

from ragrec.indexing import versions
from ragrec.recs.item_table import feature_table

SETUP_KEY = "rec_setup"
READ_EVERY_SECONDS = 10.0  # a serving process re-reads the live setup at most this often


@dataclass(frozen=True)
class RecSettings:
    candidates: int = 100
    mmr_lambda: float = 0.7
    half_life_days: float = 7.0
    profile_clicks: int = 50
    interests: int = 5  # most recent clicked documents whose neighbours are candidates
    per_interest: int = 30  # neighbours per interest without the learned model
    blend_per_interest: int = 60  # ... beside it (MovieLens validation, bench.rec_served --tune)
    popularity: bool = True  # fuse the interest ranking with click popularity (RRF)
    rerank_weight: float = 0.5
    profile_half_life: float | None = 3.0  # in clicked documents, newest first
    # Blend weights of the min-max scaled sources (``recs.blend``): the shipped ones were
    # chosen on MovieLens 100K's validation split; rec_train tunes them per deployment.
    collaborative: float = 1.0
    content: float = 0.4
    popular: float = 0.05
    cold_slots: int = 1  # places of k kept for documents nobody has consumed
    cold_users: int = 0  # ... "nobody": at most this many consumers at the last rec_train
    cold_min_similarity: float = 0.6  # ... tower cosine to the newest items (validation)
    recent_days: float = 30.0  # the learned ranker's recent popularity window
    ranker: str = ""  # the learned ranker's version ("": the blend ranks)

    def weights(self) -> dict[str, float]:
        return {"collaborative": self.collaborative, "content": self.content,
                "popular": self.popular}


SHIPPED = RecSettings()
_cache: dict[tuple[int, str], tuple[float, dict | None]] = {}
_lock = threading.Lock()


def read_setup(client: Elasticsearch, alias: str, fresh: bool = False) -> dict | None:
    """The live tuned setup (None: never tuned, or no feature table yet)."""
    key, now = (id(client), feature_table(alias)), time.monotonic()
    with _lock:
        cached = _cache.get(key)
    if cached and not fresh and now - cached[0] < READ_EVERY_SECONDS:
        return cached[1]
    try:
        setup = versions.mapping_meta(client, feature_table(alias)).get(SETUP_KEY)
    except NotFoundError:
        setup = None
    with _lock:
        _cache[key] = (now, setup)
    return setup


def write_setup(client: Elasticsearch, alias: str, setup: dict) -> None:
    table = feature_table(alias)
    versions.put_mapping_meta(client, table, **{SETUP_KEY: setup})
    with _lock:
        _cache[(id(client), table)] = (time.monotonic(), setup)


def served_settings(client: Elasticsearch, alias: str,
                    defaults: RecSettings = SHIPPED) -> RecSettings:
    """The defaults with the live setup's weights, and its learned ranker when it has one,
    laid over them."""
    setup = read_setup(client, alias)
    if not setup:
        return defaults
    return replace(defaults, ranker=(setup.get("ranker") or {}).get("version", ""),
                   **{name: float(weight) for name, weight in setup["weights"].items()})
