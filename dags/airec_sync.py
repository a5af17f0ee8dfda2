"""
### airec_sync

Runs whenever the knowledge-base index Asset (`ragrec_kb_index`) is updated (kb_ingest,
kb_reindex) or a rollout triggers it: one recommendation item per document, with its
document vector, is written to the feature table `<alias>-rec-items` in Elasticsearch (the
embedded default, read by `/recommend`), and - with the Connection `airec_default` - new,
changed and deleted items are pushed to AIRec through its official SDK and its custom
ranking model is pointed at the model endpoint (`/rank` with the learned ranker once
`rec_train` installed one, else the rerank route); then the behaviours logged
since the last run (impressions, clicks, likes, with their trace ids) go to its behavior
table.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from ragrec.airflow.assets import KB_INDEX
from ragrec.airflow.dag_defaults import DEFAULT_ARGS


@dag(
    schedule=[KB_INDEX],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ragrec", "recommendations"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params={"index": Param("ragrec-kb", type="string",
                           title="Index alias (when not triggered by the Asset)")},
)
def airec_sync():
    @task
    def resolve_alias(params=None, triggering_asset_events=None) -> str:
        from ragrec.airflow import airec_steps

        return airec_steps.alias_of(params, triggering_asset_events)

    @task
    def write_feature_table(alias: str) -> dict:
        from ragrec.airflow import airec_steps

        return airec_steps.feature_table(alias)

    @task
    def push_to_airec(alias: str, table: dict) -> dict:
        from ragrec.airflow import airec_steps

        return airec_steps.push_to_airec(alias, table)

    @task
    def push_behaviours(alias: str, items: dict) -> dict:
        from ragrec.airflow import airec_steps

        return airec_steps.push_behaviours(alias, items)

    alias = resolve_alias()
    push_behaviours(alias, push_to_airec(alias, write_feature_table(alias)))


dag_object = airec_sync()

if __name__ == "__main__":
    dag_object.test()
