"""``/search``: a request read as a search spec plus filters, ranked by
``retrieval.Searcher`` (the one ranking path), with highlights.

By default a request is ranked by the spec the live index version was gated with (recorded
in its ``_meta`` at go-live); the request's ``mode``, ``fusion``, ``dense_weight``, ``depth``
and ``rerank*`` fields override parts of it. Hits are chunks; each carries the scores that
placed it (``bm25``, ``dense`` cosine, ``rerank``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt

from ragrec.api.es_limits import EsDateTime, KeywordPrefix, Page, RequestModel, Terms
from ragrec.feedback import exploration
from ragrec.retrieval import Searcher, SearchSpec, SpecError
from ragrec.retrieval.queries import filter_clauses
from ragrec.retrieval.spec import MAX_DEPTH
from ragrec.web.http_errors import BadRequest


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# A question or query: the pattern documents "not blank" for clients and fuzzers (the
# validator enforces it, with Python's idea of whitespace).
QueryText = Annotated[str, Field(min_length=1, max_length=2000,
                                 json_schema_extra={"pattern": r"\S"}),
                      AfterValidator(_not_blank)]


class SearchFilters(RequestModel):
    doc_id: Terms | None = Field(None, description="only these documents")
    title_path: Terms | None = Field(None, description="only chunks under these headings")
    source_prefix: KeywordPrefix | None = Field(
        None, description="source URI prefix, e.g. a folder (at most 1,000 UTF-8 bytes)")
    modified_after: EsDateTime | None = Field(None, description="ISO 8601; UTC offset within "
                                                                "+-18:00")
    modified_before: EsDateTime | None = Field(None, description="ISO 8601; UTC offset within "
                                                                 "+-18:00")
    page: Page | None = None


# Body fields are strict: JSON has true/false and numbers, so "stream": 0 or "k": "5" is a
# client mistake to report, not to guess at (the query-string forms parse text on purpose).
# A spec field left out is the served spec's.
class SearchQuery(RequestModel):
    query: QueryText
    mode: Literal["bm25", "dense", "hybrid"] | None = Field(
        None, description="default: the served spec's")
    fusion: Literal["rrf", "convex"] | None = Field(None, description="hybrid only")
    dense_weight: StrictFloat | None = Field(None, ge=0, le=1,
                                             description="convex fusion: weight of the dense "
                                                         "score")
    depth: StrictInt | None = Field(None, ge=1, le=MAX_DEPTH,
                                    description="chunks each leg retrieves")
    k: StrictInt = Field(10, ge=1, le=50)
    rerank: StrictBool | None = Field(None, description="re-score the top rerank_top by the "
                                                        "cross-encoder")
    rerank_top: StrictInt | None = Field(None, ge=1, le=200)
    rerank_weight: StrictFloat | None = Field(None, ge=0, le=1,
                                              description="1: cross-encoder order; <1 blends "
                                                          "in the first stage")
    filters: SearchFilters = Field(default_factory=SearchFilters)
    highlight: StrictBool = True

    def spec(self, served: SearchSpec) -> SearchSpec:
        """The served spec with this request's overrides."""
        try:
            return served.overridden(self.mode, self.fusion, self.dense_weight, self.depth,
                                     self.rerank, self.rerank_top, self.rerank_weight)
        except SpecError as exc:
            raise BadRequest(422, str(exc)) from None


def search(searcher: Searcher, alias: str, q: SearchQuery,
           explorer: exploration.Explorer | None = None) -> dict:
    """The ``/search`` answer for one request; in the exploration slice (``explorer``) two
    shown hits swapped, and ``explore`` says which positions (1-based)."""
    version, served = searcher.served(alias)
    ranking = searcher.search(alias, q.query, q.spec(served), q.k, filter_clauses(q.filters),
                              version=version)
    swap = explorer.draw(len(ranking.hits)) if explorer is not None else None
    ranking.hits = exploration.apply(ranking.hits, swap)
    if q.highlight:
        searcher.highlight(alias, q.query, ranking.hits)
    answer = ranking.to_dict()
    if swap is not None:
        answer["explore"] = swap.to_dict()
    return answer
