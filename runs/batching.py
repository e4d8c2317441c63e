"""Server-side batching, as TF Serving's batching parameters describe it.

Concurrent requests are queued and run as one model call: a batch starts
with the oldest queued request and takes whole requests until it holds
`max_batch_size` items or `timeout_s` has passed since that request
arrived (TF Serving's `max_batch_size` and `batch_timeout_micros`); at most
`threads` batches run at once (`num_batch_threads`). A request larger than
`max_batch_size` is refused with TF Serving's own message. When a batched
call fails (one request's bytes are not an image), each request of the
batch is run alone, so the bad one fails and the others are answered.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
from typing import Callable, Sequence

import numpy as np

from flowers.runs.serving_settings import BatchingSettings

Outputs = dict[str, np.ndarray]


class BatchSizeError(ValueError):
    """A request holds more items than one batch may."""


@dataclasses.dataclass
class _Task:
    items: list
    future: asyncio.Future
    arrived: float


class Batcher:
    """Queues requests for `call` (items -> outputs whose first axis is the
    item); `submit` answers each request with its own rows."""

    def __init__(
        self,
        call: Callable[[Sequence], Outputs],
        settings: BatchingSettings,
        is_input_error: Callable[[BaseException], bool],
    ):
        self.call = call
        self.settings = settings
        self.is_input_error = is_input_error
        self._queue: collections.deque[_Task] = collections.deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.threads)
        self._executor = concurrent.futures.ThreadPoolExecutor(settings.threads, thread_name_prefix="batch")
        self._running: set[asyncio.Task] = set()
        self._closing = False
        self._worker = asyncio.get_running_loop().create_task(self._work())
        self.batches = 0  # model calls made, for tests and logs

    async def submit(self, items: list) -> Outputs:
        if len(items) > self.settings.max_batch_size:
            # TF Serving's message, word for word (its clients match on it).
            raise BatchSizeError(
                f"Task size {len(items)} is larger than maximum input batch size {self.settings.max_batch_size}"
            )
        if self._closing:
            raise RuntimeError("this model version is being unloaded")
        loop = asyncio.get_running_loop()
        task = _Task(items, loop.create_future(), loop.time())
        self._queue.append(task)
        self._wake.set()
        return await task.future

    async def close(self) -> None:
        """Answer everything queued, then stop."""
        self._closing = True
        self._wake.set()
        await self._worker
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = self._queue[0].arrived + self.settings.timeout_s
            while not self._closing and self._queued_items() < self.settings.max_batch_size:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch, size = [], 0
            while self._queue and size + len(self._queue[0].items) <= self.settings.max_batch_size:
                task = self._queue.popleft()
                batch.append(task)
                size += len(task.items)
            await self._slots.acquire()
            running = loop.create_task(self._run(batch))
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    def _queued_items(self) -> int:
        return sum(len(t.items) for t in self._queue)

    async def _run(self, batch: list[_Task]) -> None:
        loop = asyncio.get_running_loop()
        try:
            items = [item for task in batch for item in task.items]
            self.batches += 1
            try:
                outputs = await loop.run_in_executor(self._executor, self.call, items)
            except Exception as error:  # noqa: BLE001 - each request gets its own verdict below
                if len(batch) == 1 or not self.is_input_error(error):
                    for task in batch:
                        _answer(task, error=error)
                    return
                for task in batch:  # find the bad request(s): run each alone
                    try:
                        _answer(task, await loop.run_in_executor(self._executor, self.call, task.items))
                    except Exception as single:  # noqa: BLE001
                        _answer(task, error=single)
                return
            start = 0
            for task in batch:
                end = start + len(task.items)
                _answer(task, {name: value[start:end] for name, value in outputs.items()})
                start = end
        finally:
            self._slots.release()


def _answer(task: _Task, outputs: Outputs | None = None, error: BaseException | None = None) -> None:
    if task.future.done():  # the client went away
        return
    if error is not None:
        task.future.set_exception(error)
    else:
        task.future.set_result(outputs)
