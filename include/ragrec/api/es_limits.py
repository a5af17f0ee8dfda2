"""What Elasticsearch accepts, as the API's request types: a value that ES would refuse (a 502
carrying ES's message) or that cannot even be serialised for it (a 500) is a 422 that names
the field instead.

Each limit was measured on the real node (tests/api/test_search_limits.py keeps checking
that ES refuses one past it):

* ``integer`` fields (``page``) hold 32 bits: a larger page matches nothing, and past 64 bits
  the query cannot even be serialised (orjson).
* A date's UTC offset is at most 18 hours (``java.time.ZoneOffset``); Python allows 24.
* A ``terms`` filter takes at most ``index.max_terms_count`` (65,536) values.
* A keyword term is at most 32,766 UTF-8 bytes (Lucene's longest term).
* A ``prefix`` query's automaton is at most ``index.max_regex_length`` (1,000) states: one per
  UTF-8 byte of the prefix.
* Text must be valid Unicode: JSON's ``"\\ud800"`` escape gives Python a lone surrogate, which
  orjson (the ES client's serialiser and the API's) cannot write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

INTEGER_MAX = 2**31 - 1
MAX_TERMS = 65_536
MAX_TERM_BYTES = 32_766
MAX_PREFIX_BYTES = 1_000
MAX_UTC_OFFSET = timedelta(hours=18)


def _lone_surrogate(value: object) -> str | None:
    """The first string in a JSON value that is not valid Unicode, if any."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class RequestModel(BaseModel):
    """A request body: unknown fields are refused, and its text must be valid Unicode."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: object) -> object:
        bad = _lone_surrogate(data)
        if bad is not None:
            raise ValueError(f"text {bad[:40]!r} holds a lone UTF-16 surrogate (an unpaired "
                             "\\ud800-\\udfff escape): send valid Unicode")
        return data


def _iso_string(value: object) -> object:
    # pydantic would also read numbers as Unix times; the schema promises an ISO string.
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2024-05-01T00:00:00Z")
    return value


def _offset_in_range(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        minutes = int(abs(offset).total_seconds()) // 60
        sign = "-" if offset < timedelta(0) else "+"
        raise ValueError(f"UTC offset {sign}{minutes // 60:02d}:{minutes % 60:02d} is beyond "
                         "+-18:00, the most Elasticsearch accepts")
    return value


def _utf8_at_most(limit: int, what: str):
    def check(value: str) -> str:
        size = len(value.encode("utf-8"))
        if size > limit:
            raise ValueError(f"is {size} UTF-8 bytes; {what} is at most {limit}")
        return value
    return check


EsDateTime = Annotated[datetime, BeforeValidator(_iso_string),
                       AfterValidator(_offset_in_range)]
# Characters can be up to 4 bytes; max_length keeps the schema honest, the validator exact.
Keyword = Annotated[str, Field(max_length=MAX_TERM_BYTES),
                    AfterValidator(_utf8_at_most(MAX_TERM_BYTES, "an Elasticsearch term"))]
KeywordPrefix = Annotated[str, Field(max_length=MAX_PREFIX_BYTES),
                          AfterValidator(_utf8_at_most(MAX_PREFIX_BYTES,
                                                       "an Elasticsearch prefix"))]
Terms = Annotated[list[Keyword], Field(max_length=MAX_TERMS)]
Page = Annotated[int, Field(ge=1, le=INTEGER_MAX, strict=True)]
