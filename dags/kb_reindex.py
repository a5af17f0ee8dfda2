"""
### kb_reindex

Nightly (and on a model rollout) zero-downtime rebuild of the knowledge-base index: a new
physical version is built from the whole source with the production model (or the
`model_uri` a rollout passes), validated by the index suite, then put through the
**retrieval gate**: the golden query set (BEIR layout, `golden_dir` or RAGREC_GOLDEN_DIR)
is evaluated on the candidate and the swap is refused when nDCG@10 drops more than
`gate_margin` below the live version. Passing candidates replace the live version in one
atomic alias action (the last `keep_versions` kept), changes made meanwhile are caught up,
and the `ragrec_kb_index` Asset is published. On any failure the live alias is untouched
and the unfinished candidate is dropped.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from ragrec.airflow.assets import KB_INDEX
from ragrec.airflow.dag_defaults import DEFAULT_ARGS
from ragrec.airflow.runtime import MODEL_POOL


@dag(
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ragrec", "reindex"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params={
        "source": Param("", type="string", title="Source URI",
                        description="empty: RAGREC_SOURCE or the bundled samples"),
        "index": Param("ragrec-kb", type="string", title="Index alias"),
        "model_uri": Param("", type="string", title="Model URI",
                           description="empty: the model the endpoint (eas_default) serves"),
        "golden_dir": Param("", type="string", title="Golden query set (BEIR folder)"),
        "search_spec": Param({}, type="object", title="Search spec",
                             description="what the gate scores and the API serves after "
                                         "go-live (mode, fusion, dense_weight, depth, "
                                         "rerank_top, rerank_weight); empty: the spec the "
                                         "live version serves"),
        "gate_margin": Param(0.02, type="number", minimum=0, maximum=1,
                             title="Allowed nDCG@10 drop"),
        "keep_versions": Param(2, type="integer", minimum=1, title="Versions kept"),
    },
)
def kb_reindex():
    @task
    def live_baseline(params=None) -> dict | None:
        from ragrec.airflow import kb_reindex_steps

        return kb_reindex_steps.baseline(params)

    @task(pool=MODEL_POOL)
    def build_candidate(params=None) -> dict:
        from ragrec.airflow import kb_reindex_steps

        return kb_reindex_steps.build_candidate(params)

    @task
    def validate_candidate(candidate: dict, params=None) -> dict:
        from ragrec.airflow import kb_reindex_steps

        return kb_reindex_steps.validate_candidate(params, candidate)

    @task
    def retrieval_gate(candidate: dict, live: dict | None, params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from ragrec.airflow import kb_reindex_steps

        try:
            return kb_reindex_steps.retrieval_gate(params, candidate, live)
        except kb_reindex_steps.GateRefused as refused:
            raise AirflowFailException(str(refused)) from refused  # a verdict: no retry

    @task
    def swap_alias(candidate: dict, params=None) -> dict:
        from ragrec.airflow import kb_reindex_steps

        return kb_reindex_steps.swap_alias(params, candidate)

    @task(outlets=[KB_INDEX])
    def catch_up_and_publish(params=None, outlet_events=None) -> dict:
        from ragrec.airflow import kb_reindex_steps

        result = kb_reindex_steps.catch_up_and_publish(params)
        outlet_events[KB_INDEX].extra = result
        return result

    @task(trigger_rule="one_failed")
    def drop_unfinished_candidate(params=None) -> list[str]:
        from ragrec.airflow import kb_reindex_steps

        return kb_reindex_steps.discard_failed(params)

    live = live_baseline()
    candidate = build_candidate()
    checked = validate_candidate(candidate)
    verdict = retrieval_gate(candidate, live)
    swapped = swap_alias(candidate)
    published = catch_up_and_publish()
    live >> candidate
    checked >> verdict >> swapped >> published
    [candidate, checked, verdict, swapped] >> drop_unfinished_candidate()


dag_object = kb_reindex()

if __name__ == "__main__":
    dag_object.test()
