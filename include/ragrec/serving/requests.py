"""Validation of model-server request bodies: every bad input becomes a 4xx with a message
that says what to fix, never a 500.

The checks are written by hand (their messages and status codes are the contract clients
and tests rely on: 400 for a wrong value, 413 over a limit); the pydantic models at the end
only describe the same bodies in the OpenAPI document.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ragrec.web.http_errors import BadRequest


@dataclass(frozen=True)
class Limits:
    max_texts: int = 256  # per embedding request
    max_documents: int = 1000  # per rerank request
    max_body_bytes: int = 8 * 1024 * 1024  # counted while read (request_guard), before parsing
    max_text_chars: int = 100_000  # before tokenising: cheap guard against huge strings


def parse_body(raw: bytes) -> dict:
    """The JSON object in a body (its size was checked as it was read)."""
    if not raw.strip():
        raise BadRequest(400, "empty request body: send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:  # say so: orjson's message is about surrogates
            raise BadRequest(400, f"request body is not valid UTF-8: {bad.reason} at byte "
                                  f"{bad.start}") from None
        raise BadRequest(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, f"request body must be a JSON object, not {type(body).__name__}")
    return body


def text_list(body: dict, field: str, limits: Limits, allow_single: bool) -> list[str]:
    if field not in body:
        raise BadRequest(400, f"missing field {field!r}: a list of strings")
    value = body[field]
    if allow_single and isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise BadRequest(400, f"{field!r} must be a list of strings, not {type(value).__name__}")
    if not value:
        raise BadRequest(400, f"{field!r} is empty: send at least one text")
    if len(value) > limits.max_texts:
        raise BadRequest(413, f"{len(value)} texts in one request; the limit is "
                              f"{limits.max_texts}: split the batch")
    for index, text in enumerate(value):
        check_text(text, f"{field}[{index}]", limits)
    return value


def check_text(text: object, where: str, limits: Limits) -> None:
    if not isinstance(text, str):
        raise BadRequest(400, f"{where} must be a string, not {type(text).__name__}")
    if not text.strip():
        raise BadRequest(400, f"{where} is empty or whitespace")
    if len(text) > limits.max_text_chars:
        raise BadRequest(413, f"{where} has {len(text)} characters; the limit is "
                              f"{limits.max_text_chars}")


INPUT_TYPES = ("document", "query")


def input_type(body: dict) -> str:
    """What the texts are to the model: "document" (default: what the index holds) or
    "query" (a version with a query encoder encodes queries with it)."""
    value = body.get("input_type", "document")
    if value not in INPUT_TYPES:
        raise BadRequest(400, f"'input_type' must be one of {list(INPUT_TYPES)}, not {value!r}")
    return value


def check_token_limits(counts: list[int], limit: int, field: str) -> None:
    for index, count in enumerate(counts):
        if count > limit:
            raise BadRequest(400, f"{field}[{index}] is {count} word pieces long; the model "
                                  f"reads at most {limit}: split it (the server never "
                                  "truncates silently)")


def rerank_request(body: dict, limits: Limits) -> tuple[str, list[str], int | None, bool]:
    query = body.get("query")
    if query is None:
        raise BadRequest(400, "missing field 'query'")
    check_text(query, "query", limits)
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise BadRequest(400, "'documents' must be a non-empty list of strings "
                              "(or objects with a 'text' field)")
    if len(documents) > limits.max_documents:
        raise BadRequest(413, f"{len(documents)} documents in one request; the limit is "
                              f"{limits.max_documents}")
    texts = []
    for index, document in enumerate(documents):
        if isinstance(document, dict):
            document = document.get("text")
        check_text(document, f"documents[{index}]", limits)
        texts.append(document)
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool)
                              or top_n < 1):
        raise BadRequest(400, "'top_n' must be a positive integer")
    return_documents = body.get("return_documents", False)
    if not isinstance(return_documents, bool):
        raise BadRequest(400, "'return_documents' must be true or false")
    return query, texts, top_n, return_documents


def rank_request(body: dict, limits: Limits,
                 query_ranker: str | None) -> tuple[str, int, list[str], list[dict]]:
    """(ranker reference, the user's history length, candidate ids, their features)."""
    ranker = body.get("ranker", query_ranker)
    if not isinstance(ranker, str) or not ranker.strip():
        raise BadRequest(400, "missing 'ranker' (in the body or as ?ranker=): the ranker "
                              "version or registry reference, e.g. 'kb-ranker@production'")
    user = body.get("user", {})
    if not isinstance(user, dict):
        raise BadRequest(400, "'user' must be an object: {\"id\", \"history\"}")
    history = user.get("history", 0)
    if not isinstance(history, int) or isinstance(history, bool) or history < 0:
        raise BadRequest(400, "'user.history' must be a non-negative integer: how many "
                              "items the user consumed")
    candidates = body.get("candidates")
    if not isinstance(candidates, list):
        raise BadRequest(400, "'candidates' must be a list of {\"id\", \"features\"}")
    if len(candidates) > limits.max_documents:
        raise BadRequest(413, f"{len(candidates)} candidates in one request; the limit is "
                              f"{limits.max_documents}")
    ids, rows = [], []
    for index, candidate in enumerate(candidates):
        if not isinstance(candidate, dict) or not isinstance(candidate.get("id"), str):
            raise BadRequest(400, f"candidates[{index}] must be an object with a string 'id'")
        features = candidate.get("features", {})
        if not isinstance(features, dict) or not all(
                isinstance(v, int | float) and not isinstance(v, bool)
                and math.isfinite(v) for v in features.values()):
            raise BadRequest(400, f"candidates[{index}].features must map feature names to "
                                  "finite numbers")
        ids.append(candidate["id"])
        rows.append(features)
    return ranker.strip(), history, ids, rows


# -- The bodies as the OpenAPI document shows them (defaults of Limits) --------------------
_LIMITS = Limits()
_TOKENS = ("Each text must fit the model's input (`max_input_tokens` in /health, 256 word "
           "pieces for MiniLM): longer is a 400, never silently truncated.")
Text = Annotated[str, Field(min_length=1, max_length=_LIMITS.max_text_chars,
                            json_schema_extra={"pattern": r"\S"})]
Texts = Annotated[list[Text], Field(min_length=1, max_length=_LIMITS.max_texts)]
InputType = Annotated[Literal["document", "query"], Field(
    description="what the texts are: documents (what the index holds) or search queries, "
                "which a version with a query encoder (`query_encoder` in /health) encodes "
                "with it")]


class EasRequest(BaseModel):
    """EAS style: a list of texts."""

    texts: Texts = Field(description=_TOKENS)
    input_type: InputType = "document"


class EmbeddingsRequest(BaseModel):
    """OpenAI-compatible; other fields OpenAI clients send (``user``) are ignored."""

    model_config = ConfigDict(extra="allow")

    input: Text | Texts = Field(description=_TOKENS)
    model: str | None = Field(None, description="the served model's name or version")
    dimensions: int | None = Field(None, description="only the model's own dimension")
    encoding_format: Literal["float", "base64"] = "float"
    input_type: InputType = "document"


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: Text


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    query: Text
    documents: list[Text | RerankDocument] = Field(min_length=1,
                                                   max_length=_LIMITS.max_documents)
    top_n: int | None = Field(None, ge=1, description="how many results (default: all)")
    return_documents: bool = False


class RankCandidate(BaseModel):
    id: str
    features: dict[str, float] = Field(
        default_factory=dict, description="the ranker's candidate features "
        "(ragrec.recs.ranker.BASE_FEATURES); a missing one counts as 0")


class RankUser(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    history: int = Field(0, ge=0, description="how many items the user has consumed")


class RankRequest(BaseModel):
    """A user and their candidates, scored by a learned recommendation ranker."""

    ranker: str | None = Field(None, description="version or registry reference "
                               "(name@stage, name:version); or ?ranker= in the URL")
    user: RankUser = Field(default_factory=RankUser)
    candidates: list[RankCandidate] = Field(max_length=_LIMITS.max_documents)


class ModelSwapRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, description="model URI: path, file://, oss://, or 'base'")
    backend: Literal["torch", "onnx", "onnx-int8"] | None = Field(
        None, description="default: the backend now serving")


BODIES = (EasRequest, EmbeddingsRequest, RerankRequest, RankRequest, ModelSwapRequest)
