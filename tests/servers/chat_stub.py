"""A local OpenAI-compatible chat completions server (``POST /v1/chat/completions``) that
checks what a real one would (bearer key, model, a messages list of role/content objects,
``stream``) and what ragrec promises to send: a system message with the numbered passages
and the user's question. It answers, streamed as server-sent events, with one sentence per
passage it was given, citing it as ``[n]`` - so a test can follow every citation back."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from servers.background import InBackground
from servers.json_reply import send_json


class ChatStub(InBackground):
    def __init__(self, api_key: str = "llm-key", model: str = "qwen-plus",
                 fail_with: int | None = None, answer: str | None = None):
        """``answer``: reply with this text instead of one sentence per passage. A condense
        request (ragrec's follow-up rewrite) is answered with the last message's words
        plus those of the conversation's first question."""
        self.api_key, self.model, self.fail_with = api_key, model, fail_with
        self.answer = answer
        self.requests: list[dict] = []
        self.problems: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, payload: dict) -> None:
                send_json(self, status, payload)

            def do_POST(self):  # noqa: N802
                if self.path != "/v1/chat/completions":
                    return self._reply(404, {"error": {"message": "unknown route"}})
                if self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    return self._reply(401, {"error": {"message": "bad api key"}})
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except (ValueError, KeyError, TypeError):
                    return self._reply(400, {"error": {"message": "body is not JSON"}})
                problem = stub.check(body)
                if problem:
                    stub.problems.append(problem)
                    return self._reply(400, {"error": {"message": problem}})
                stub.requests.append(body)
                if stub.fail_with:
                    return self._reply(stub.fail_with, {"error": {"message": "overloaded"}})
                if stub.condensing(body):
                    asked = body["messages"][-1]["content"]
                    first = re.search(r"^User: (.*)$", asked, re.M).group(1)
                    last = asked.rsplit("Last message: ", 1)[1]
                    pieces = [f"{last} (about: {first})"]
                else:
                    numbers = sorted({int(n) for n in re.findall(
                        r"^\[(\d+)\]", body["messages"][0]["content"], re.M)})
                    pieces = [f"Passage {n} answers part of it [{n}]. " for n in numbers]
                    if stub.answer is not None:
                        pieces = re.findall(r"\S+\s*", stub.answer)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for piece in pieces:
                        chunk = {"object": "chat.completion.chunk", "model": stub.model,
                                 "choices": [{"index": 0, "delta": {"content": piece}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    return None
                return self._reply(200, {"object": "chat.completion", "model": stub.model,
                                         "choices": [{"index": 0, "message": {
                                             "role": "assistant",
                                             "content": "".join(pieces)}}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @staticmethod
    def condensing(body) -> bool:
        return body["messages"][0]["content"].startswith("Rewrite the user's last message")

    def check(self, body) -> str | None:
        if not isinstance(body, dict) or body.get("model") != self.model:
            return f"model must be {self.model!r}"
        messages = body.get("messages")
        if not isinstance(messages, list) or len(messages) < 2:
            return "messages must be a list of at least a system and a user message"
        for message in messages:
            if (not isinstance(message, dict) or message.get("role") not in
                    ("system", "user", "assistant") or not isinstance(message.get("content"),
                                                                      str)):
                return "each message needs a role and string content"
        if self.condensing(body):
            if "Last message: " not in messages[-1]["content"]:
                return "a condense request must end with the last message"
            return None
        if messages[0]["role"] != "system" or not re.search(r"^\[1\] ", messages[0]["content"],
                                                             re.M):
            return "the system message must list numbered passages starting at [1]"
        if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
            return "the last message must be the user's question"
        return None

