"""
### quality_monitor

Nightly data-quality checks of the live knowledge-base index, with Great Expectations:
the chunk suite over every chunk (unique ids, a finite unit-norm vector of the right size on
each, token counts within bounds, one model version), the document suite (as many documents
as the source lists minus quarantine, freshness) and the golden query set against the score
recorded when the index went live. Any failure sends a **data-quality alert** to the
configured channels (`alerts_webhook`, `alerts_smtp`) naming the failing expectations and
the Data Docs site, and fails the run.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from ragrec.airflow.dag_defaults import DEFAULT_ARGS


@dag(
    schedule="30 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ragrec", "quality"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params={
        "source": Param("", type="string", title="Source URI",
                        description="empty: RAGREC_SOURCE or the bundled samples"),
        "index": Param("ragrec-kb", type="string", title="Index alias"),
        "golden_dir": Param("", type="string", title="Golden query set (BEIR folder)"),
        "search_spec": Param({}, type="object", title="Search spec",
                             description="empty: the spec the live version serves"),
        "gate_margin": Param(0.02, type="number", minimum=0, maximum=1,
                             title="Allowed nDCG@10 drop"),
        "max_age_hours": Param(48, type="number", minimum=0,
                               title="Newest document indexed within (0: no check)"),
    },
)
def quality_monitor():
    @task
    def check_chunks(params=None) -> dict:
        from ragrec.airflow import quality_steps

        return quality_steps.chunks(params)

    @task
    def check_documents(params=None) -> dict:
        from ragrec.airflow import quality_steps

        return quality_steps.documents(params)

    @task
    def check_golden_set(params=None) -> dict | None:
        from ragrec.airflow import quality_steps

        return quality_steps.golden(params)

    @task(on_failure_callback=[])  # it sends the data-quality alert itself
    def alert_on_failures(chunks: dict, documents: dict, golden: dict | None,
                          params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from ragrec.airflow import quality_steps

        try:
            return quality_steps.alert(params, {"chunks": chunks, "documents": documents,
                                                "golden": golden})
        except quality_steps.DataQualityFailed as failed:
            raise AirflowFailException(str(failed)) from failed

    alert_on_failures(check_chunks(), check_documents(), check_golden_set())


dag_object = quality_monitor()

if __name__ == "__main__":
    dag_object.test()
