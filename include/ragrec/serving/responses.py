"""The shapes of the model server's successful answers, for its OpenAPI document (the
handlers build plain dicts; the Schemathesis tests check every answer against these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EasEmbeddings(BaseModel):
    embeddings: list[list[float]]
    model_version: str
    dims: int
    query_encoder: bool = Field(description="the version encodes queries otherwise than "
                                            "documents - an encoder of its own, or its "
                                            "base's query prefix (send input_type query for "
                                            "them)")
    document_version: str = Field(description="the version whose document encoder made "
                                               "document vectors (a version that trained only "
                                               "its query side names its base)")


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian "
                                                     "float32 with encoding_format base64")


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class Embeddings(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str = Field(description="the model version that computed the vectors")
    usage: Usage
    query_encoder: bool = Field(description="the version encodes queries otherwise than "
                                            "documents - an encoder of its own, or its "
                                            "base's query prefix (send input_type query for "
                                            "them)")
    document_version: str = Field(description="the version whose document encoder made "
                                               "document vectors (a version that trained only "
                                               "its query side names its base)")


class RerankedText(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="position in the request's documents")
    relevance_score: float
    document: RerankedText | None = None


class Reranked(BaseModel):
    results: list[RerankResult]
    model: str


class Ranked(BaseModel):
    scores: list[float] = Field(description="one per candidate, in the request's order; "
                                "higher ranks first")
    ranker: str = Field(description="the ranker version that scored them")


class ServedModel(BaseModel):
    name: str
    version: str
    dims: int
    max_input_tokens: int
    reranker: bool
    backend: str
    root: str
    query_encoder: bool
    document_version: str


class Health(ServedModel):
    status: Literal["ok"]
    service: str


class Swapped(BaseModel):
    previous: ServedModel
    current: ServedModel


MODEL_VERSION = {"X-Model-Version": {"description": "the model version that answered",
                                     "schema": {"type": "string"}}}
