"""``/ask``: retrieve, then answer from the retrieved passages only, with numbered citations.

* With an LLM configured (any OpenAI-compatible chat endpoint: DashScope compatible mode,
  vLLM, a llama.cpp server), a grounded prompt lists the passages as ``[1]``, ``[2]``, ... and
  the model's answer is streamed back.
* Without one, the answer is extractive: the passages' sentences that best match the
  question (cosine in the index's own embedding space), each followed by its citation.
* When no passage reaches ``min_support`` (the best cosine between the question and a
  retrieved passage), the API says it cannot answer instead of guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np

from ragrec.config import LlmSettings

SYSTEM_PROMPT = (
    "You answer questions about the company's documents. Use only the numbered passages "
    "below. After every sentence, cite the passages it relies on as [n]. If the passages do "
    "not contain the answer, say that you cannot answer from the documents.")
REFUSAL = "I cannot answer that from the indexed documents: nothing relevant enough was found."
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass
class Passage:
    number: int
    doc_id: str
    title: str
    text: str
    chunk_id: str
    support: float  # cosine between the question and this passage

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def build_messages(question: str, passages: list[Passage]) -> list[dict]:
    numbered = "\n\n".join(f"[{p.number}] {p.title or p.doc_id}\n{p.text}" for p in passages)
    return [{"role": "system", "content": f"{SYSTEM_PROMPT}\n\nPassages:\n\n{numbered}"},
            {"role": "user", "content": question}]


class LlmError(RuntimeError):
    pass


def stream_chat(settings: LlmSettings, messages: list[dict]) -> Iterator[str]:
    """Text deltas of a streamed chat completion (server-sent events)."""
    headers = {"Content-Type": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    body = {"model": settings.model, "messages": messages, "stream": True,
            "temperature": 0.1, "max_tokens": settings.max_tokens}
    try:
        with httpx.stream("POST", f"{settings.url}/chat/completions", json=body,
                          headers=headers, timeout=settings.timeout) as response:
            if response.status_code != 200:
                response.read()
                raise LlmError(f"LLM endpoint answered {response.status_code}: "
                               f"{response.text[:200]}")
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    choice = json.loads(data)["choices"][0]
                except (ValueError, KeyError, IndexError) as exc:
                    raise LlmError(f"malformed stream chunk from the LLM: {data[:120]}") from exc
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    yield delta
    except httpx.TransportError as exc:
        raise LlmError(f"LLM endpoint {settings.url} unreachable: {exc}") from exc


def split_sentences(text: str, min_words: int = 4) -> list[str]:
    """Sentences of a passage. Lines are split first and a short line without closing
    punctuation is a heading, never glued onto the sentence after it; fragments under
    ``min_words`` are dropped."""
    sentences = []
    for line in text.splitlines():
        line = " ".join(line.lstrip("#").split())
        if not line or (line[-1] not in ".!?:;)\"'" and len(line.split()) <= 8):
            continue
        sentences += [s for s in _SENTENCE.split(line) if len(s.split()) >= min_words]
    return sentences


def extractive_answer(question_vector: np.ndarray, passages: list[Passage], encode,
                      max_sentences: int = 3) -> tuple[str, list[int]]:
    """The sentences closest to the question, in passage order, each cited."""
    candidates = [(p.number, s) for p in passages for s in split_sentences(p.text)]
    if not candidates:
        return REFUSAL, []
    vectors = encode([s for _, s in candidates])
    scores = vectors @ question_vector
    best = sorted(np.argsort(-scores)[:max_sentences])
    chosen = [candidates[i] for i in best]
    answer = " ".join(f"{sentence} [{number}]" for number, sentence in chosen)
    return answer, sorted({number for number, _ in chosen})


def cited_numbers(text: str) -> list[int]:
    return sorted({int(n) for n in re.findall(r"\[(\d+)\]", text)})
