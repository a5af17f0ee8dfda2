"""The body limit and the token, checked before a body is parsed (``serving/request_guard``):
a caller without the token is refused with its body unread; a body over the limit - chunked,
so without a Content-Length to trust - is refused once the limit is passed, and no more of
it is read. Unit level with a counting ASGI channel, then through real uvicorn with the
model server."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from servers.uvicorn_thread import UvicornThread
from starlette.datastructures import Headers

from ragrec.web.request_guard import RequestGuard, token_refusal

LIMIT = 1000
CHUNK = 100


class Upload:
    """An ASGI receive channel offering ``chunks`` body chunks; counts what was pulled."""

    def __init__(self, chunks: int, size: int = CHUNK):
        self.left, self.size, self.pulled = chunks, size, 0

    async def __call__(self):
        self.left -= 1
        self.pulled += self.size
        return {"type": "http.request", "body": b"x" * self.size, "more_body": self.left > 0}


async def _echo(scope, receive, send):
    """The application behind the guard: answers with the length of the body it got."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def _call(upload: Upload, headers: dict[str, str], token: str | None = "t0ken"):
    guard = RequestGuard(_echo, LIMIT, lambda _path, h: token_refusal(h, token))
    scope = {"type": "http", "method": "POST", "path": "/x",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, upload, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], Headers(raw=start["headers"]), body


CHUNKED = {"Transfer-Encoding": "chunked", "Authorization": "Bearer t0ken"}


def test_an_oversized_chunked_body_stops_being_read_past_the_limit():
    upload = Upload(chunks=10_000)  # 1 MB offered against a 1,000-byte limit
    status, headers, body = _call(upload, CHUNKED)
    assert status == 413
    assert upload.pulled == LIMIT + CHUNK  # the read that crossed the limit, and no more
    assert headers["connection"] == "close"  # the rest is never read off the socket either
    assert "over the 1000-byte limit" in orjson.loads(body)["error"]["message"]


def test_a_caller_without_the_token_is_refused_before_any_of_the_body_is_read():
    upload = Upload(chunks=10_000)
    status, headers, body = _call(upload, {"Transfer-Encoding": "chunked"})
    assert status == 401 and upload.pulled == 0
    assert headers["www-authenticate"] == "Bearer"
    assert orjson.loads(body)["error"]["code"] == 401
    wrong = Upload(chunks=5)
    assert _call(wrong, {**CHUNKED, "Authorization": "Bearer nope"})[0] == 401
    assert wrong.pulled == 0


def test_a_declared_length_over_the_limit_is_refused_unread():
    upload = Upload(chunks=20)
    status, _, body = _call(upload, {"Content-Length": "2000", "Authorization": "t0ken"})
    assert status == 413 and upload.pulled == 0
    assert "2000 bytes" in orjson.loads(body)["error"]["message"]


@pytest.mark.parametrize("chunks", [1, 10])  # exactly the limit, in one piece or many
def test_a_body_within_the_limit_reaches_the_application_whole(chunks):
    status, _, body = _call(Upload(chunks, LIMIT // chunks), CHUNKED)
    assert (status, body) == (200, str(LIMIT).encode())


def test_no_configured_token_means_no_auth():
    assert _call(Upload(1), {}, token=None)[0] == 200


# -- The model server through real uvicorn: what a client on the network sees -------------

OFFERED = 64 * 1024 * 1024
TOKEN = "chunk-token"


class CountingReceive:
    """ASGI wrapper counting the body bytes the server stack took off the connection."""

    def __init__(self, app):
        self.app, self.taken = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            self.taken += len(message.get("body", b""))
            return message
        await self.app(scope, counted, send)


def chunked_upload(total: int, counter: list[int]):
    piece = b"x" * 65536
    for _ in range(total // len(piece)):
        counter[0] += len(piece)
        yield piece


@pytest.fixture(scope="module")
def model_server_app():
    from ragrec.serving.app import ServerConfig, create_app
    from ragrec.serving.loaded_model import LoadedModel

    return create_app(LoadedModel.from_uri("base"), ServerConfig(service="kb", token=TOKEN))


@pytest.mark.parametrize("token, status", [(TOKEN, 413), (None, 401)])
def test_the_model_server_stops_a_chunked_upload(model_server_app, token, status):
    """64 MB chunked against the 8 MB limit: 413 after at most the limit plus one network
    read; no token: 401 with nothing read. The connection is closed, so the client is
    stopped too (it gets to push only what the socket buffers hold)."""
    limit = 8 * 1024 * 1024
    counted = CountingReceive(model_server_app)
    pushed = [0]
    headers = {"Authorization": token} if token else {}
    with UvicornThread(counted) as server:
        response = httpx.post(f"{server.base}/api/predict/kb", headers=headers, timeout=60,
                              content=chunked_upload(OFFERED, pushed))
        taken, counted.taken = counted.taken, 0
        within = httpx.post(f"{server.base}/api/predict/kb", headers={"Authorization": TOKEN},
                            content=chunked_upload(4 * 65536, [0]), timeout=60)
    print(f"\n[request-guard] model server, {status}: read {taken:,} bytes; the client "
          f"pushed {pushed[0]:,} of {OFFERED:,}")
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == status
    assert taken == 0 if status == 401 else limit < taken <= limit + 1024 * 1024
    assert pushed[0] < OFFERED / 2
    # a chunked body within the limit is read whole and parsed as usual: here, not JSON
    assert within.status_code == 400 and "not valid JSON" in within.json()["error"]["message"]
    assert counted.taken == 4 * 65536
