"""The data-quality suites, as Great Expectations expectations over pandas frames.

* ``chunk_suite``: one row per chunk (a batch about to be indexed, or the live index): unique
  chunk ids, a vector on every chunk, the right dimensions, finite values, unit norm (the
  encoder normalises), token counts within the chunker's and the model's bounds, and the
  model version the index records.
* ``index_suite``: one row per indexed document: as many documents as the source lists
  minus those in quarantine, and the newest one indexed recently enough (freshness).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ChunkRules:
    dims: int
    model_version: str
    max_tokens: int  # the chunker's size (cl100k tokens)
    max_model_tokens: int  # what the encoder reads
    norm_tolerance: float = 0.01


@dataclass(frozen=True)
class IndexRules:
    expected_documents: int
    fresh_after: datetime | None = None  # newest indexed_at must be later than this


def chunk_suite(name: str, rules: ChunkRules):
    import great_expectations as gx

    e = gx.expectations
    suite = gx.ExpectationSuite(name=name)
    for expectation in (
        e.ExpectColumnValuesToBeUnique(column="chunk_id"),
        e.ExpectColumnValuesToNotBeNull(column="vector_norm"),
        e.ExpectColumnValuesToBeInSet(column="vector_dims", value_set=[rules.dims]),
        e.ExpectColumnValuesToBeInSet(column="vector_finite", value_set=[True]),
        e.ExpectColumnValuesToBeBetween(column="vector_norm",
                                        min_value=1 - rules.norm_tolerance,
                                        max_value=1 + rules.norm_tolerance),
        e.ExpectColumnValuesToBeBetween(column="token_count", min_value=1,
                                        max_value=rules.max_tokens),
        e.ExpectColumnValuesToBeBetween(column="model_token_count", min_value=1,
                                        max_value=rules.max_model_tokens),
        e.ExpectColumnValuesToBeInSet(column="model_version", value_set=[rules.model_version]),
    ):
        suite.add_expectation(expectation)
    return suite


def index_suite(name: str, rules: IndexRules):
    import great_expectations as gx
    import pandas as pd

    e = gx.expectations
    suite = gx.ExpectationSuite(name=name)
    suite.add_expectation(e.ExpectTableRowCountToEqual(value=rules.expected_documents))
    suite.add_expectation(e.ExpectColumnValuesToBeUnique(column="doc_id"))
    if rules.fresh_after is not None:
        suite.add_expectation(e.ExpectColumnMaxToBeBetween(
            column="indexed_at", min_value=pd.Timestamp(rules.fresh_after)))
    return suite
