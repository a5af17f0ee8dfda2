"""The LLM side of answers: any OpenAI-compatible chat endpoint (DashScope compatible mode,
vLLM, a llama.cpp server). A grounded prompt lists the passages as ``[1]``, ``[2]``, ...;
a condense prompt turns a follow-up into a standalone search query."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from ragrec.answers.passages import Passage
from ragrec.config import LlmSettings

SYSTEM_PROMPT = (
    "You answer questions about the company's documents. Use only the numbered passages "
    "below. After every sentence, cite the passages it relies on as [n]. If the passages do "
    "not contain the answer, say that you cannot answer from the documents.")
CONDENSE_PROMPT = (
    "Rewrite the user's last message as one standalone search query that can be understood "
    "without the conversation: resolve pronouns and references from the earlier turns, keep "
    "the user's own terms. Answer with the query only, no quotes, no explanation.")


class LlmError(RuntimeError):
    pass


def build_messages(question: str, passages: list[Passage],
                   history: list[dict] | None = None) -> list[dict]:
    """The grounded prompt; ``history``: earlier turns as ``{"question", "answer"}``."""
    numbered = "\n\n".join(f"[{p.number}] {p.title or p.doc_id}\n{p.text}" for p in passages)
    messages = [{"role": "system", "content": f"{SYSTEM_PROMPT}\n\nPassages:\n\n{numbered}"}]
    for turn in history or []:
        messages += [{"role": "user", "content": turn["question"]},
                     {"role": "assistant", "content": turn["answer"]}]
    return messages + [{"role": "user", "content": question}]


def condense_messages(question: str, history: list[dict]) -> list[dict]:
    transcript = "\n".join(f"User: {t['question']}\nAssistant: {t['answer']}"
                           for t in history)
    return [{"role": "system", "content": CONDENSE_PROMPT},
            {"role": "user", "content": f"Conversation:\n{transcript}\n\n"
                                        f"Last message: {question}"}]


def complete(settings: LlmSettings, messages: list[dict], max_tokens: int | None = None) -> str:
    return "".join(stream_chat(settings, messages, max_tokens)).strip()


def stream_chat(settings: LlmSettings, messages: list[dict],
                max_tokens: int | None = None) -> Iterator[str]:
    """Text deltas of a streamed chat completion (server-sent events)."""
    headers = {"Content-Type": "application/json"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    body = {"model": settings.model, "messages": messages, "stream": True,
            "temperature": 0.1, "max_tokens": max_tokens or settings.max_tokens}
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
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    raise LlmError(f"malformed stream chunk from the LLM: {data[:120]}") from exc
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    yield delta
    except httpx.TransportError as exc:
        raise LlmError(f"LLM endpoint {settings.url} unreachable: {exc}") from exc
