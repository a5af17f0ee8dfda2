"""
### model_rollout

Manual rollout of a model version (trigger with the form): **register** it in the registry
as `candidate` (RAGREC_REGISTRY), **deploy** it to the model endpoint (`eas_default`: the
local model server through its admin route, or PAI-EAS through its SDK with extra
`deploy: eas`), **smoke-test** it (version, dimensions, latency of a known query, same vector
as the model in process), trigger **kb_reindex** with that version and wait for it (the
retrieval gate decides), then **promote** it to `production` and trigger the recommendation
resync (`airec_sync`). If anything after the deploy fails, the endpoint is rolled back to
the version it served before. Queries keep being encoded with the model recorded on the
index behind the alias, so index and query encoder never disagree, also mid-rollout.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task

from ragrec.airflow.dag_defaults import DEFAULT_ARGS


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ragrec", "models"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "model_uri": Param("", type="string", minLength=1, title="Model version URI",
                           description="file://, oss:// or registry:NAME:VERSION"),
        "reindex": Param(True, type="boolean", title="Rebuild the index with it"),
        "eval_dataset": Param("", type="string", title="Golden query set for the gate",
                              description="BEIR folder; empty: RAGREC_GOLDEN_DIR"),
        "index": Param("ragrec-kb", type="string", title="Index alias"),
        "source": Param("", type="string", title="Source URI for the rebuild"),
        "known_query": Param("how do I reset my password", type="string",
                             title="Smoke-test query"),
        "max_p99_ms": Param(2000, type="number", minimum=1, title="Smoke-test p99 budget"),
    },
)
def model_rollout():
    @task
    def register(params=None) -> dict:
        from ragrec.airflow import rollout_steps

        return rollout_steps.register(params)

    @task
    def deploy(model: dict) -> dict:
        from ragrec.airflow import rollout_steps

        return rollout_steps.deploy(model)

    @task
    def smoke_test(model: dict, deployed: dict, params=None) -> dict:
        from ragrec.airflow import rollout_steps

        return rollout_steps.smoke(params, model)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def reindex_requested(params=None) -> bool:
        return bool(params["reindex"])

    reindex = TriggerDagRunOperator(
        task_id="reindex_with_new_model",
        trigger_dag_id="kb_reindex",
        trigger_run_id="rollout__{{ run_id }}",
        conf={"model_uri": "{{ ti.xcom_pull(task_ids='register')['uri'] }}",
              "index": "{{ params.index }}", "source": "{{ params.source }}",
              "golden_dir": "{{ params.eval_dataset }}"},
        wait_for_completion=True,
        poke_interval=5,
        allowed_states=["success"],
        failed_states=["failed"],
    )

    @task(trigger_rule="none_failed")
    def promote(model: dict) -> dict:
        from ragrec.airflow import rollout_steps

        return rollout_steps.promote(model)

    resync = TriggerDagRunOperator(
        task_id="trigger_recommendation_resync",
        trigger_dag_id="airec_sync",
        trigger_run_id="rollout__{{ run_id }}",
        conf={"index": "{{ params.index }}"},
        wait_for_completion=False,
    )

    @task(trigger_rule="one_failed")
    def roll_back_endpoint(ti=None) -> dict | None:
        from ragrec.airflow import rollout_steps

        return rollout_steps.rollback(ti.xcom_pull(task_ids="deploy"))

    model = register()
    deployed = deploy(model)
    checked = smoke_test(model, deployed)
    promoted = promote(model)
    checked >> reindex_requested() >> reindex >> promoted >> resync
    [deployed, checked, reindex, promoted] >> roll_back_endpoint()


dag_object = model_rollout()

if __name__ == "__main__":
    dag_object.test()
