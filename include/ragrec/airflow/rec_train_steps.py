"""rec_train's task body: collaborative neighbours from the events index into the feature
table, and the blend and learned ranker tuned on the deployment's own log
(``ragrec.recs.training``; a winning ranker is registered in the model registry). A
deployment without behaviour yet skips the run, it does not fail it: content neighbours
serve until there are clicks to learn from."""

from __future__ import annotations

import logging

from ragrec.airflow import runtime

log = logging.getLogger(__name__)


def learn_neighbours(alias: str, settings: dict | None = None) -> dict:
    from airflow.exceptions import AirflowSkipException

    from ragrec.airflow.connections import registry_settings
    from ragrec.recs.tower import TowerSettings
    from ragrec.recs.training import CfSettings, NoEvents, learn
    from ragrec.recs.tuning import TuneSettings

    given = dict(settings or {})
    if isinstance(given.get("tower"), dict):  # a run's JSON settings
        given["tower"] = TowerSettings(**given["tower"])
    tuning = given.pop("tuning", {})  # {"holdout": 2, "content": [0, 0.4]}; false: off
    if tuning is not False:
        tuning = TuneSettings(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in (tuning or {}).items()})
    try:
        report = learn(runtime.es_client(), alias, CfSettings(**given), tuning or None,
                       registry_settings())
    except NoEvents as exc:
        raise AirflowSkipException(str(exc)) from exc
    log.info("%s neighbours for %d of %d items from %d events of %d users", report["method"],
             report["items_with_neighbours"], report["items"], report["events"],
             report["users"])
    log.info("recommendation tower: %s", report["tower"])
    return report
