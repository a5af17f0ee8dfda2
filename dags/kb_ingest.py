"""
### kb_ingest

Hourly incremental ingest of the knowledge base: documents modified in the run's data
interval are parsed, chunked, embedded (through the model endpoint of `eas_default`, at
most `model_endpoint` pool slots at a time), checked by the chunk suite and indexed into
the alias `index`; documents gone from the source are pruned; the index suite validates
the result and the `ragrec_kb_index` Asset is published.

* First run of an index: every document up to the interval's end.
* `all_documents` (the demo, a manual run after a retrain): every document in the source
  when the run lists it, whatever the run's data interval.
* Backfill: `airflow backfill create --dag-id kb_ingest --from-date ... --to-date ...`
  re-processes the documents modified in each past interval; unchanged documents are
  skipped, so re-runs are idempotent.
* Connections: `elasticsearch_default`, `eas_default` (model endpoint), `oss_default` for
  `oss://` sources; without them ES_URL / the local node and the in-process model.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from ragrec.airflow.assets import KB_INDEX
from ragrec.airflow.dag_defaults import DEFAULT_ARGS
from ragrec.airflow.runtime import MODEL_POOL


@dag(
    # Hourly data intervals [start, end): each run owns the documents modified in its hour.
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ragrec", "ingest"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params={
        "source": Param("", type="string", title="Source URI",
                        description="file:///dir or oss://bucket/prefix; empty: "
                                    "RAGREC_SOURCE or the bundled samples"),
        "index": Param("ragrec-kb", type="string", title="Index alias"),
        "batch_size": Param(64, type="integer", minimum=1, maximum=5000,
                            title="Documents per mapped batch"),
        "all_documents": Param(False, type="boolean",
                               title="Full listing: every document in the source now"),
        "language": Param("", type="string", enum=["", "en", "zh", "auto"],
                          title="Index language",
                          description="what BM25 reads the text as: en, zh (cjk bigrams), "
                                      "auto (the base encoder's); empty: RAGREC_LANGUAGE, "
                                      "else the live index's"),
    },
)
def kb_ingest():
    @task
    def plan(params=None, data_interval_start=None, data_interval_end=None, ti=None) -> list:
        """Key ranges of the documents modified in the interval that are new or changed
        (the plan's counts: XCom key "plan")."""
        from ragrec.airflow import kb_ingest_steps

        planned = kb_ingest_steps.plan(params, data_interval_start, data_interval_end)
        ti.xcom_push(key="plan", value={k: v for k, v in planned.items() if k != "batches"})
        return planned["batches"]

    @task
    def prepare_index(params=None) -> dict:
        from ragrec.airflow import kb_ingest_steps

        return kb_ingest_steps.prepare(params)

    @task(pool=MODEL_POOL)
    def ingest_batch(batch: dict, params=None) -> dict:
        from ragrec.airflow import kb_ingest_steps

        return kb_ingest_steps.ingest(params, batch)

    @task(trigger_rule="none_failed")
    def prune_deleted(params=None) -> dict:
        from ragrec.airflow import kb_ingest_steps

        return kb_ingest_steps.prune(params)

    @task(trigger_rule="none_failed", outlets=[KB_INDEX])
    def validate_and_publish(summaries, params=None, outlet_events=None,
                             data_interval_end=None, ti=None) -> dict:
        from ragrec.airflow import kb_ingest_steps

        result = kb_ingest_steps.validate(params, list(summaries or []), data_interval_end,
                                          ti.xcom_pull(task_ids="plan", key="plan"))
        outlet_events[KB_INDEX].extra = result
        return result

    planned = plan()
    prepared = prepare_index()
    batches = ingest_batch.expand(batch=planned)
    pruned = prune_deleted()
    planned >> prepared >> batches >> pruned >> validate_and_publish(batches)

dag_object = kb_ingest()

if __name__ == "__main__":
    dag_object.test()
