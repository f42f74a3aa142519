"""Gathering requests of concurrent callers into batches, in one asyncio event loop (no Ray).

    batcher = RequestBatcher(run_batch, max_batch=64, max_wait_s=0.002, key=lambda r: r.slot)
    result = await batcher.submit(request)        # from many coroutines at once
    await batcher.control(lambda: load_weights(...))   # runs between two batches, in arrival order

A batch closes `max_wait_s` after its first request or when it holds `max_batch` requests, whichever comes
first; `run_batch(list of requests) -> list of results` then runs on one compute thread (so the next batch
gathers meanwhile) and each caller gets its own result. Two requests with the same key (frames of one episode)
never share a batch: the second closes the batch and opens the next, so per-key order is kept. A control call
(a weight swap) also closes the batch: requests that arrived before it run before it, later ones after it,
so no batch mixes two states. An exception of run_batch goes to every caller of that batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_CONTROL = object()


class RequestBatcher:
    def __init__(self, run_batch: Callable[[list], list], max_batch: int, max_wait_s: float,
                 key: Callable[[Any], Any] = id):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch = {max_batch} must be >= 1 and max_wait_s = {max_wait_s} >= 0")
        self.run_batch, self.max_batch, self.max_wait_s, self.key = run_batch, max_batch, max_wait_s, key
        self.queue: asyncio.Queue | None = None
        self.carry: list = []                       # the item that closed the last batch opens the next
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.batch_sizes: list[int] = []
        self._loop_task: asyncio.Task | None = None

    def _start(self) -> None:
        if self._loop_task is None:  # lazily: the queue and task belong to the loop the callers run in
            self.queue = asyncio.Queue()
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, request) -> Any:
        self._start()
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future))
        return await future

    async def control(self, fn: Callable[[], Any]) -> Any:
        """Runs fn() on the compute thread between batches, after every request submitted before it."""
        self._start()
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((_CONTROL, (fn, future)))
        return await future

    async def _next(self, timeout: float | None):
        if self.carry:
            return self.carry.pop()
        if not self.queue.empty():  # already there: no waiting (wait_for with timeout 0 would not take it)
            return self.queue.get_nowait()
        if timeout is None:
            return await self.queue.get()
        if timeout <= 0:
            raise asyncio.TimeoutError
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, keys, control = [], set(), None
            item = await self._next(None)
            deadline = loop.time() + self.max_wait_s
            while True:
                if item[0] is _CONTROL:
                    if batch:
                        self.carry.append(item)   # run the batch first, then the control call
                    else:
                        control = item[1]
                    break
                key = self.key(item[0])
                if key in keys:
                    self.carry.append(item)
                    break
                batch.append(item)
                keys.add(key)
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = await self._next(max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
            if control is not None:
                fn, future = control
                await self._settle([future], loop.run_in_executor(self.executor, fn), single=True)
            else:
                self.batch_sizes.append(len(batch))
                requests = [request for request, _ in batch]
                await self._settle([f for _, f in batch],
                                   loop.run_in_executor(self.executor, self.run_batch, requests))

    @staticmethod
    async def _settle(futures: list, work, single: bool = False) -> None:
        try:
            results = await work
        except Exception as error:  # every caller of the batch hears of it; the loop goes on
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, result in zip(futures, [results] if single else results):
            if not future.done():  # a caller that gave up (cancelled) is skipped
                future.set_result(result)

    def stats(self) -> dict:
        sizes = self.batch_sizes
        return {"batches": len(sizes), "requests": sum(sizes),
                "mean_batch": sum(sizes) / len(sizes) if sizes else 0.0,
                "mean_fill": sum(sizes) / len(sizes) / self.max_batch if sizes else 0.0}

    def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        self.executor.shutdown(wait=False)
