"""The learned recommendation ranker: fitted by ``rec_train`` on the deployment's own
held-out behaviour, kept only when it beats the tuned blend out of fold, registered as a
model version, served by the model server's ``/rank`` (what ``/recommend/user`` and AIRec's
custom ranker call), and AIRec pointed at it - on the real node and the real model server."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
from servers.airec_server import AirecServer
from servers.model_server_process import ModelServerProcess

from ragrec.config import AirecSettings, RegistrySettings
from ragrec.embedding.bases import BASE_MODEL_VERSION
from ragrec.models import ranker as served
from ragrec.recs import ranker as rankers
from ragrec.recs import setup as rec_setup
from ragrec.recs import training
from ragrec.recs.events import log_events
from ragrec.recs.tuning import TuneSettings, Validation, compare_ranker
from ragrec.sources import open_source

HOT = 8  # the pages read this week


def _examples(users: int, seed: int) -> list[rankers.Example]:
    """Pools where the held-out document is the one read most this month, while all-time
    popularity and the other sources point elsewhere: a blend of the scaled sources cannot
    find it, a ranker that reads ``recent_popularity`` can."""
    rng, examples = np.random.default_rng(seed), []
    for user in range(users):
        ids = [f"d{n}" for n in range(30)]
        raw = {name: {d: float(rng.random()) for d in ids} for name in rankers.SOURCES}
        target = ids[int(rng.integers(30))]
        recent = {d: int(rng.integers(0, 3)) for d in ids} | {target: 40}
        rows = rankers.candidate_features(raw, ids, recent)
        examples.append(rankers.Example(rankers.design(rows, 5),
                                        np.asarray([d == target for d in ids]), 1, f"u{user}"))
    return examples


def test_the_ranker_learns_what_the_blend_cannot_and_round_trips(tmp_path):
    validation = Validation(_examples(60, 1))
    compared = compare_ranker(validation, TuneSettings())
    assert compared["wins"]
    assert compared["ranker_ndcg@10"] > 0.9 > 0.5 > compared["blend_ndcg@10"]
    # Pure noise (the held-out document shuffled within each pool): on this sample the
    # ranker leads the blend by chance, by 1.5 standard errors - not enough to be kept.
    noise = Validation([rankers.Example(e.matrix, np.random.default_rng(n + 800).permutation(
        e.relevant), 1, e.group) for n, e in enumerate(_examples(60, 8))])
    assert compare_ranker(noise, TuneSettings(ranker_margin=0.0))["wins"]
    assert not compare_ranker(noise, TuneSettings())["wins"]
    model = rankers.fit(validation.pools)
    model.version = "rank-test-1"
    saved = served.load(served.save(model, tmp_path / "v1", "test-ranker"))
    rows = rankers.candidate_features({"collaborative": {"a": 1.0, "b": 0.0},
                                       "content": {"a": 0.0, "b": 0.3},
                                       "popular": {"a": 2.0, "b": 1.0}}, ["a", "b"],
                                      {"b": 9})
    assert rows[0]["collaborative"] == 1.0 and rows[1]["collaborative_rank"] == 0.0
    assert rows[1]["recent_popularity"] == pytest.approx(np.log1p(9))
    assert np.allclose(saved.score(rows, 5), model.score(rows, 5))
    assert saved.score(rows, 5)[1] > saved.score(rows, 5)[0]  # the recent one
    with pytest.raises(ValueError, match="not a recommendation ranker"):
        served.load(tmp_path)


def _trending_log(pages: list[str], users: int, now: datetime) -> list[dict]:
    """Two months ago each user read four pages, mostly the old favourites; this week
    everyone reads two of the ``HOT`` new pages (the later one is what validation holds
    out): read less often than the favourites overall, but the only pages read lately."""
    rng, rows = random.Random(5), []
    hot, old = pages[:HOT], pages[HOT:]
    weights = [1 / (rank + 1) for rank in range(len(old))]
    for user in range(users):
        start = now - timedelta(days=60, hours=user)
        reads = []
        while len(reads) < 4:
            page = rng.choices(old, weights)[0]
            if page not in reads:
                reads.append(page)
        reads += rng.sample(hot, 2)
        for n, page in enumerate(reads):
            ts = start + timedelta(minutes=n) if n < 4 else \
                now - timedelta(days=2, hours=user % 24, minutes=-n)
            rows.append({"user_id": f"reader-{user}", "doc_id": page, "type": "click",
                         "ts": ts})
    return rows


def test_a_winning_ranker_is_registered_served_and_replaced_only_by_better(
        es, make_ingestor, index_name, cleanup_alias, tmp_path, monkeypatch):
    from ragrec.models.registry import open_registry
    from ragrec.models.resolver import ModelResolver
    from ragrec.recs import recommend

    registry = RegistrySettings(root=(tmp_path / "registry").as_uri())
    folder = tmp_path / "kb"
    folder.mkdir()
    pages = []
    for n in range(40):
        pages.append(f"page-{n:02d}.md")
        (folder / pages[-1]).write_text(f"# Notice {n}\n\nStaff notice number {n} about "
                                        f"{['rooms', 'tools', 'forms', 'trips'][n % 4]}.\n")
    cleanup_alias(index_name)
    make_ingestor().ingest(open_source(str(folder)), index_name)
    now = datetime.now(UTC)
    log_events(es, index_name, _trending_log(pages, 60, now))

    report = training.learn(es, index_name, registry=registry)["tuning"]
    learned = report["ranker"]
    assert learned["wins"] and learned["ranker_ndcg@10"] > learned["blend_ndcg@10"], learned
    assert "model" not in learned  # the run's report carries no weights
    live = rec_setup.read_setup(es, index_name, fresh=True)
    version = live["ranker"]["version"]
    assert live["ranker"] == learned["installed"]
    entry = open_registry(registry).show(f"{index_name}-ranker")
    assert entry["stages"]["production"] == version
    assert entry["versions"][version]["kind"] == "recommendation-ranker"

    # Served: the ranker orders the pool; a user who read two old favourites is shown this
    # week's pages, which the blend (all-time popularity, co-reading) cannot see.
    log_events(es, index_name, [
        {"user_id": "newcomer", "doc_id": pages[HOT + n], "type": "click",
         "ts": now - timedelta(days=1, minutes=n)} for n in range(2)])
    models = ModelResolver(None, registry)
    served = recommend.for_user(es, index_name, "newcomer", models, BASE_MODEL_VERSION, k=3)
    assert served["ranked_by"] == "ranker" and served["ranker"] == version
    blend = recommend.for_user(es, index_name, "newcomer", None, "v", k=3)
    assert blend["ranked_by"] == "blend"  # without models: the tuned blend
    shown = {name: [i["doc_id"] for i in r["items"]] for name, r in
             (("ranker", served), ("blend", blend))}
    assert set(shown["ranker"]) <= set(pages[:HOT]), shown
    assert len(set(shown["blend"]) & set(pages[:HOT])) < 3, shown

    # A run that cannot beat it (the ranker off, a blend of behaviour alone) keeps it.
    narrow = TuneSettings(collaborative=(1.0,), content=(0.0,), popular=(0.0,), ranker=False)
    again = training.learn(es, index_name, tuning=narrow, registry=registry)["tuning"]
    assert not again["install"] and again["live"]["ranker"] == version
    assert rec_setup.read_setup(es, index_name, fresh=True)["ranker"]["version"] == version


def test_rank_route_serves_the_registered_ranker_and_airec_points_at_it(
        es, make_ingestor, index_name, cleanup_alias, tmp_path):
    from ragrec.airflow.airec_steps import ranker_url
    from ragrec.cloud.airec import AirecClient, AirecError
    from ragrec.embedding.model_endpoint import ModelEndpoint
    from ragrec.models.resolver import ModelResolver
    from ragrec.recs.item_table import sync_feature_table
    from ragrec.sources.samples import samples_dir

    registry = RegistrySettings(root=(tmp_path / "registry").as_uri())
    model = rankers.fit(_examples(40, 2))
    installed = served.register(model.to_dict(), index_name, registry, {"note": "test"})
    rows = [{"collaborative": 0.2, "recent_popularity": 0.0},
            {"collaborative": 0.1, "recent_popularity": 3.5}, {}]
    expected = served.load_reference(installed["version"], registry).score(rows, 4)
    # No service token: the AIRec check calls the route as the service would, unsigned.
    with ModelServerProcess("base", "", "adm", service="kb-rank",
                            extra_env={"RAGREC_REGISTRY": registry.root}) as server:
        headers = {}
        body = {"user": {"id": "u-1", "history": 4},
                "candidates": [{"id": f"d{n}", "features": f} for n, f in enumerate(rows)]}
        for reference in (installed["version"], installed["reference"]):
            answer = httpx.post(f"{server.predict_url}/rank", params={"ranker": reference},
                                json=body, headers=headers, timeout=30)
            assert answer.status_code == 200, answer.text
            assert np.allclose(answer.json()["scores"], expected)
            assert answer.json()["ranker"] == installed["version"]
            assert answer.headers["X-Model-Version"] == installed["version"]
        # Bad input: clear 4xx answers, never a 500.
        for bad, status, words in (
                ({**body, "ranker": installed["version"], "candidates": [{"id": 3}]}, 400,
                 "string 'id'"),
                ({**body, "ranker": installed["version"],
                  "candidates": [{"id": "a", "features": {"x": "high"}}]}, 400,
                 "finite numbers"),
                (body, 400, "missing 'ranker'"),
                ({**body, "ranker": "no-such-ranker@production"}, 404, "no-such-ranker")):
            answer = httpx.post(f"{server.predict_url}/rank", json=bad, headers=headers,
                                timeout=30)
            assert answer.status_code == status and words in answer.json()["error"]["message"]
        # /recommend's path to it: through the endpoint, the same scores.
        endpoint = ModelEndpoint(server.predict_url)
        via = ModelResolver(endpoint, None).rank(
            installed["reference"], 4, [(f"d{n}", f) for n, f in enumerate(rows)])
        assert np.allclose(via, expected)

        # AIRec's custom ranker: the deployment's live ranker, by its production stage.
        cleanup_alias(index_name)
        make_ingestor().ingest(open_source(str(samples_dir())), index_name)
        sync_feature_table(es, index_name)
        rec_setup.write_setup(es, index_name, {
            "weights": rec_setup.SHIPPED.weights(), "ranker": installed})
        url, version = ranker_url(es, index_name, server.predict_url, None)
        assert url == (f"{server.predict_url}/rank?ranker="
                       f"{installed['reference'].replace('@', '%40')}")
        assert version == installed["version"]
        with AirecServer() as airec:
            settings = AirecSettings(endpoint=airec.endpoint, access_key_id="airec-ak",
                                     access_key_secret="airec-secret",
                                     region_id="cn-hangzhou", instance_id=airec.instance_id,
                                     protocol="http", ranking_model_id="rm-1")
            AirecClient(settings).point_ranker_at(url, version)
            assert airec.rankers["rm-1"]["meta"]["custom_ranker_url"] == url
            # A ranker URL that does not answer is refused by the service's check.
            with pytest.raises(AirecError, match="does not answer"):
                AirecClient(settings).point_ranker_at("http://127.0.0.1:9/x/rank", version)
