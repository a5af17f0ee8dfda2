"""
### es_roundtrip

Writes a probe document to Elasticsearch and reads it back through search, using the
Connection `elasticsearch_default` (or `ES_URL` / the local node when no such Connection
exists). Trigger it after changing cluster credentials to check the platform can index.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from ragrec.airflow.dag_defaults import DEFAULT_ARGS


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ragrec", "health"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params={"index": Param("ragrec-roundtrip", type="string", title="Probe index")},
)
def es_roundtrip():
    @task
    def write(params=None, run_id=None) -> str:
        from ragrec.airflow.hooks import RagrecElasticsearchHook
        from ragrec.jobs.roundtrip import write_probe

        return write_probe(RagrecElasticsearchHook().get_conn(), params["index"], run_id)

    @task
    def read(probe_id: str, params=None) -> dict:
        from ragrec.airflow.hooks import RagrecElasticsearchHook
        from ragrec.jobs.roundtrip import read_probe

        return read_probe(RagrecElasticsearchHook().get_conn(), params["index"], probe_id)

    read(write())


dag_object = es_roundtrip()

if __name__ == "__main__":
    dag_object.test()
