"""
### model_train

Manual retraining (trigger with the form): **fine-tune the query encoder** (against the
base version's document vectors; held-out train queries pick the epoch it keeps), then
**the reranker**, on a BEIR-layout dataset's judged train queries, on the clicks logged for
an index, or on an index's own traffic (`events`: clicks corrected for position bias, the
queries first seen last held out to pick the epoch on; no dataset needed), each inside the
time budget; **evaluate** the version in every retrieval mode (and on held-out traffic,
beside the live version, with `events`); **register** it as
a `candidate` (RAGREC_REGISTRY). Roll it out with `model_rollout` (`model_uri`
`registry:NAME:VERSION`, printed in the register task's log). The same jobs as `ragrec train`
and `ragrec eval`; bad training data fails the run with the reason, without retries.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from ragrec.airflow.dag_defaults import DEFAULT_ARGS
from ragrec.models.budget import DEFAULT_MAX_MINUTES


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ragrec", "models"],
    default_args=DEFAULT_ARGS,
    doc_md=__doc__,
    params={
        "dataset": Param("", type="string", title="Dataset (BEIR folder)",
                         description="corpus.jsonl, queries.jsonl, qrels/train.tsv; optional "
                                     "with events"),
        "events": Param("", type="string", title="Learn from this index's traffic",
                        description="alias whose logged impressions and clicks to learn "
                                    "from, corrected for position bias (its documents are "
                                    "the corpus); empty: the dataset"),
        "clicks_from": Param("", type="string", title="Learn from clicks of this index",
                             description="alias whose logged events to export and train on "
                                         "as they are (every click a positive); empty: the "
                                         "dataset's judged train queries"),
        "base": Param("base", type="string", title="Base model version",
                      description="'base', file://, oss:// or registry:NAME@production"),
        "name": Param("ragrec-minilm", type="string", minLength=1, title="Model name"),
        "index": Param("ragrec-train-corpus", type="string",
                       title="Alias of the corpus (base version's vectors, hard negatives)"),
        "max_minutes": Param(DEFAULT_MAX_MINUTES, type="number", minimum=0,
                             title="Budget per training job (minutes, 0: none)"),
        "max_steps": Param(None, type=["null", "integer"], minimum=1,
                           title="At most this many steps per training job"),
        "eval_split": Param("test", type="string", title="Split to report"),
        "out_root": Param("", type="string", title="Where version directories go",
                          description="empty: <cache>/models; shared by the workers"),
    },
)
def model_train():
    @task
    def plan(params=None, run_id=None) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.plan(params, run_id)

    @task
    def train_embedder(planned: dict) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.train("embedder", planned)

    @task
    def train_reranker(planned: dict, embedder: dict) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.train("reranker", planned)

    @task
    def evaluate(planned: dict, reranker: dict) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.evaluate(planned)

    @task
    def register_candidate(planned: dict, evaluation: dict) -> dict:
        from ragrec.airflow import train_steps

        return train_steps.register(planned)

    planned = plan()
    embedder = train_embedder(planned)
    reranker = train_reranker(planned, embedder)
    register_candidate(planned, evaluate(planned, reranker))


dag_object = model_train()

if __name__ == "__main__":
    dag_object.test()
