"""Dynamic batching: concurrent requests are merged into one model call.

Requests queue up; a single worker takes the first, keeps collecting for at most
``max_wait_ms`` (or until ``max_batch`` items: texts to embed, (query, passage) pairs to
rerank), runs the model once in a worker thread and hands each request its own rows. One
worker thread - shared by the embedding and the rerank batchers of a server - means the
model never runs twice at once, so CPU threads are not oversubscribed and a swap only has
to wait for the batch in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    def __init__(self, run: Callable[[list], tuple[np.ndarray, object]],
                 max_batch: int = 64, max_wait_ms: float = 4.0,
                 observe: Callable[[int, float], None] | None = None,
                 executor: ThreadPoolExecutor | None = None):
        """``run(items) -> (rows, tag)``; ``tag`` (the model version) goes back with the
        rows, so a request always knows which model produced its rows. ``executor``: the
        one model thread, when another batcher shares it."""
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.observe = observe
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1,
                                                        thread_name_prefix="ragrec-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: Sequence) -> tuple[np.ndarray, object]:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(list(texts), future))
        return await future

    async def _collect(self) -> list[_Request]:
        first = await self._queue.get()
        batch, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            timeout = deadline - time.monotonic()
            if timeout <= 0 and self._queue.empty():
                break
            try:
                request = self._queue.get_nowait() if timeout <= 0 else \
                    await asyncio.wait_for(self._queue.get(), timeout)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            batch.append(request)
            size += len(request.texts)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            texts = [t for request in batch for t in request.texts]
            started = time.monotonic()
            try:
                vectors, tag = await loop.run_in_executor(self._executor, self.run, texts)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            if self.observe:
                self.observe(len(texts), time.monotonic() - started)
            position = 0
            for request in batch:
                rows = vectors[position: position + len(request.texts)]
                position += len(request.texts)
                if not request.future.done():
                    request.future.set_result((rows, tag))
