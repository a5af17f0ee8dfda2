"""The shapes of the search API's successful answers, for its OpenAPI document.

The handlers build these answers as plain dicts (serialised by orjson); the models here
describe them, and the Schemathesis tests check every answer against them, so the document
cannot drift from what is served.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Hit(BaseModel):
    id: str = Field(description="chunk id")
    doc_id: str
    chunk_no: int
    title: str
    text: str
    source_uri: str
    page: int | None
    score: float = Field(description="the score that placed the hit (fused or reranked)")
    scores: dict[str, float] = Field(description="bm25, dense (cosine) and rerank scores")
    highlights: list[str]


class Spec(BaseModel):
    mode: Literal["bm25", "dense", "hybrid"]
    fusion: Literal["rrf", "convex"]
    dense_weight: float
    depth: int
    rerank_top: int = Field(description="0: no rerank")
    rerank_weight: float


TRACE_ID = Field(description="this response's id: impressions and clicks on what it showed "
                             "carry it back (POST /events)")


class Explored(BaseModel):
    swapped: list[int] = Field(min_length=2, max_length=2,
                               description="the two positions swapped (1-based, upper first)")


class SearchResult(BaseModel):
    trace_id: str = TRACE_ID
    query: str
    mode: Literal["bm25", "dense", "hybrid"]
    fusion: Literal["rrf", "convex"] | None
    reranked: bool
    spec: Spec = Field(description="how the hits were ranked (default: the spec the index "
                                   "version was gated with)")
    model_version: str
    index: str
    took_ms: float
    hits: list[Hit]
    explore: Explored | None = Field(
        None, description="only in the exploration slice (RAGREC_EXPLORE): two hits were "
                          "swapped, so that position and relevance can be told apart in the "
                          "clicks")


class Passage(BaseModel):
    number: int = Field(description="the [n] the answer cites it by")
    doc_id: str
    title: str
    text: str
    chunk_id: str
    support: float = Field(description="cosine between the question and the passage")


class SentenceCitation(BaseModel):
    number: int = Field(description="the cited passage")
    doc_id: str
    chunk_id: str
    start: int = Field(description="the source sentence is the passage text[start:end]")
    end: int


class AnswerSentence(BaseModel):
    text: str
    citations: list[SentenceCitation]
    supported: bool = Field(description="false: the sentence cites nothing, or its words "
                                        "are not in the passages it cites (LLM answers)")
    score: float | None = Field(None, description="the selector's score (extractive)")


class Answer(BaseModel):
    trace_id: str = TRACE_ID
    question: str
    standalone_query: str = Field(description="what was searched (a follow-up made "
                                              "standalone)")
    model_version: str
    support: float
    min_support: float
    answer: str
    mode: Literal["refused", "extractive", "llm"]
    sentences: list[AnswerSentence]
    citations: list[Passage]
    passages: list[Passage] | None = None
    selector: Literal["cross-encoder", "cosine", "none"] | None = None
    removed_citations: list[int] | None = Field(
        None, description="LLM citations that named no retrieved passage")
    timings_ms: dict[str, float]


class ChatTurn(Answer):
    conversation_id: str
    turn: int


class StoredTurn(BaseModel):
    conversation_id: str
    turn: int
    ts: str
    expires_at: str
    question: str
    standalone_query: str
    answer: str
    mode: Literal["refused", "extractive", "llm"]
    model_version: str
    sentences: list[AnswerSentence]
    citations: list[Passage]
    passages: list[Passage]
    timings_ms: dict[str, float]


class Conversation(BaseModel):
    conversation_id: str
    turns: list[StoredTurn]


class Recommendation(BaseModel):
    doc_id: str
    title: str
    chunk_no: int | None = None
    excerpt: str | None = None
    source_uri: str | None = None
    similarity: float | None = Field(None, description="cosine to the query document or "
                                                       "interest")
    rerank: float | None = Field(None, description="cross-encoder score, min-max scaled")
    also_read: float | None = Field(None, description="/recommend/item: how strongly readers "
                                                      "of the document also read this one "
                                                      "(min-max scaled)")


class SimilarItems(BaseModel):
    trace_id: str = TRACE_ID
    doc_id: str
    items: list[Recommendation]


class UserRecommendations(BaseModel):
    trace_id: str = TRACE_ID
    user_id: str
    strategy: Literal["collaborative", "interests", "popular"]
    reranked: bool
    history: int | None = Field(None, description="clicks the profile was built from")
    items: list[Recommendation]


class Stored(BaseModel):
    stored: int


class Health(BaseModel):
    status: Literal["ok"]
    index: str
    model_version: str | None
    llm: str | None
    auth: bool


# One server-sent event of /ask or /chat with "stream": true (OpenAPI's itemSchema for
# event streams).
ANSWER_EVENT = {
    "type": "object", "required": ["event", "data"],
    "description": "`passages` (the numbered passages), `delta` (answer text, repeated), then "
                   "`done` (the answer without passages) - or `error` if the LLM fails "
                   "mid-answer",
    "properties": {"event": {"enum": ["passages", "delta", "done", "error"]},
                   "data": {"type": "string", "contentMediaType": "application/json"}}}
