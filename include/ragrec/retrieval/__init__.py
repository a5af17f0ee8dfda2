"""Ranking over a chunk index, all of it: the query bodies (``queries``), the fusion
arithmetic (``fusion``), the search spec (``spec``) and the one ``Searcher`` (``searcher``)
that the API, the CLI, evaluation and the quality gates rank with.

Queries are encoded by the model version recorded on the index behind the alias; an
encoder of another version is refused, because its vectors live in another space.
"""

from ragrec.retrieval.searcher import (
    EncoderMismatch,
    Hit,
    NoReranker,
    PinnedModels,
    QueryModels,
    Ranking,
    Searcher,
    bm25,
    dense,
)
from ragrec.retrieval.spec import MODES, SearchSpec, SpecError

__all__ = ["MODES", "EncoderMismatch", "Hit", "NoReranker", "PinnedModels", "QueryModels",
           "Ranking", "SearchSpec", "Searcher", "SpecError", "bm25", "dense"]
