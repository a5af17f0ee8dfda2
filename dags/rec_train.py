"""
### rec_train

Learns the collaborative neighbours of every recommendation item from what users consumed
(the `<alias>-events` clicks, "helped" and thumbs up): EASE while the consumed catalogue
fits, co-consumption kNN beyond it. Each item's top neighbours land in its row of the
feature table `<alias>-rec-items`, where recommendations read them, with the item's
`rec_vector` from the recommendation tower fitted on what users read next (new documents
get one too: it is what their cold place is searched by). Before that, the blend weights of
`/recommend/user`'s sources (collaborative, content, popular) are tuned on this deployment's
own log - each user's last 3 events held out, one validation case each - and a learned
ranker over the candidates' features is fitted on the same cases, kept only when it beats
the blend out of fold (registered as a version of `<alias>-ranker`, served by the model
endpoint's `/rank`); the result replaces the live setup (`rec_setup` in the feature table's
`_meta`) only when it scores at least as well on the same cases. Runs nightly, and when
the knowledge-base index Asset (`ragrec_kb_index`) is updated; skipped while there are no
events yet.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from ragrec.airflow.assets import KB_INDEX
from ragrec.airflow.dag_defaults import DEFAULT_ARGS


@dag(
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("15 2 * * *", timezone="UTC"),
                                 assets=[KB_INDEX]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ragrec", "recommendations"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params={"index": Param("ragrec-kb", type="string",
                           title="Index alias (when not triggered by the Asset)"),
            "settings": Param({}, type="object", title="CfSettings overrides",
                              description="e.g. {\"l2\": 500, \"neighbours\": 50, "
                                          "\"tuning\": {\"holdout\": 2, \"ranker\": false}} "
                                          "(\"tuning\": false: keep the live blend)")},
)
def rec_train():
    @task
    def resolve_alias(params=None, triggering_asset_events=None) -> str:
        from ragrec.airflow import airec_steps

        return airec_steps.alias_of(params, triggering_asset_events)

    @task
    def learn_neighbours(alias: str, params=None) -> dict:
        from ragrec.airflow import rec_train_steps

        return rec_train_steps.learn_neighbours(alias, params.get("settings"))

    learn_neighbours(resolve_alias())


dag_object = rec_train()

if __name__ == "__main__":
    dag_object.test()
