"""
### model_feedback

The custom model learning from its own deployment. Daily (03:30 UTC), once at least
`min_sessions` search answers with impressions were logged in `<index>-events` since the
last version trained here: **train** the query encoder from the whole log (clicks weighted
by their bias-corrected relevance, results skipped above a click as negatives, the queries
first seen last held out to pick the epoch on: `ragrec train embedder --events`),
**evaluate** it beside the live version on that held-out traffic (counterfactual nDCG@10 of
the clicked documents, with its interval), **register** it as `candidate` with those
figures, and hand it to **model_rollout** (deploy, smoke test, `kb_reindex`, whose gate
judges by held-out traffic when no golden set is configured). Too little new traffic skips
the run. Turn on the exploration slice (`RAGREC_EXPLORE`, e.g. 0.05) on the search API, or
position bias cannot be measured and clicks are read as they are.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task

from ragrec.airflow.dag_defaults import DEFAULT_ARGS
from ragrec.models.budget import DEFAULT_MAX_MINUTES


@dag(
    schedule="30 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ragrec", "models", "feedback"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "index": Param("ragrec-kb", type="string", minLength=1, title="Index alias",
                       description="whose traffic to learn from and roll out to"),
        "min_sessions": Param(2000, type="integer", minimum=1,
                              title="New search sessions needed"),
        "base": Param("base", type="string", title="Base model version",
                      description="the version the live index's documents were encoded by"),
        "name": Param("ragrec-minilm", type="string", minLength=1, title="Model name"),
        "max_minutes": Param(DEFAULT_MAX_MINUTES, type="number", minimum=0,
                             title="Training budget (minutes, 0: none)"),
        "max_steps": Param(None, type=["null", "integer"], minimum=1,
                           title="At most this many steps"),
        "out_root": Param("", type="string", title="Where version directories go",
                          description="empty: <cache>/models; shared by the workers"),
        "rollout": Param(True, type="boolean", title="Hand the candidate to model_rollout"),
    },
)
def model_feedback():
    @task
    def new_traffic(params=None) -> dict:
        from ragrec.airflow import feedback_steps

        return feedback_steps.enough_traffic(params)

    @task.short_circuit
    def enough(traffic: dict) -> bool:
        return traffic["enough"]

    @task
    def plan(params=None, run_id=None) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.plan({**params, "events": params["index"], "dataset": ""}, run_id)

    @task
    def train_embedder(planned: dict) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.train("embedder", planned)

    @task
    def evaluate(planned: dict, embedder: dict) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.evaluate(planned)

    @task
    def register_candidate(planned: dict, evaluation: dict) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.register(planned)

    @task
    def mark_trained(traffic: dict, registered: dict, params=None) -> dict:
        from ragrec.airflow import feedback_steps

        return feedback_steps.mark_trained(params, traffic)

    @task.short_circuit
    def rollout_requested(params=None) -> bool:
        return bool(params["rollout"])

    rollout = TriggerDagRunOperator(
        task_id="rollout_candidate",
        trigger_dag_id="model_rollout",
        trigger_run_id="feedback__{{ run_id }}",
        conf={"model_uri": "{{ ti.xcom_pull(task_ids='register_candidate')['uri'] }}",
              "index": "{{ params.index }}"},
        wait_for_completion=False,
    )

    traffic = new_traffic()
    planned = plan()
    enough(traffic) >> planned
    registered = register_candidate(planned, evaluate(planned, train_embedder(planned)))
    mark_trained(traffic, registered) >> rollout_requested() >> rollout


dag_object = model_feedback()

if __name__ == "__main__":
    dag_object.test()
