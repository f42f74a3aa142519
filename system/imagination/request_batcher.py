"""Gathering requests of concurrent callers into batches, in one asyncio event loop (no Ray).

    batcher = RequestBatcher(run_batch, max_batch=64, max_wait_s=0.002, key=lambda r: r.slot,
                             kind=lambda r: type(r), size=lambda r: 1)
    result = await batcher.submit(request)        # from many coroutines at once
    await batcher.control(lambda: load_weights(...))   # runs between two batches, in arrival order

A batch holds requests of one kind only (`kind(request)`, hashable: the world-model service's act requests, and
its imagine requests of one shape) and closes `max_wait_s` (or the kind's own `wait(kind)`) after it opened or
when it holds `max_batch` rows
(`size(request)` rows each; a single larger request runs alone), whichever comes first; `run_batch(list of
requests) -> list of results` then runs on one compute thread (so the next batch gathers meanwhile) and each
caller gets its own result. Two requests with the same key (frames of one episode) never share a batch: the
second closes the batch, so per-key order is kept.

Kinds do not starve each other: every batch is opened by the oldest waiting request and takes the waiting
requests of that kind in arrival order, so a request waits only behind batches that hold a request older than
it: with two kinds, at most one batch of the other kind. Requests of other kinds that arrive while a batch
gathers wait for the next. A control call (a weight swap) is a barrier in arrival order: requests that arrived
before it run before it, later ones after it, so no batch mixes two states. An exception of run_batch goes to
every caller of that batch.

Long batches can run a piece at a time: run_batch returns an `Unfinished` (the world-model service's imagine
rollouts, in pieces of about one imagined frame's work), which goes back in line behind the requests that
arrived meanwhile, so a request waits for at most one piece of each batch in progress, not for whole batches;
the batch's callers get their results when its last piece is done. A control call that arrived during a batch
still waits for all its pieces (no rollout mixes two weight versions), and so do the requests behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_CONTROL = object()


class Unfinished:
    """What run_batch may return instead of the results: work to finish a piece at a time. `advance()` does one
    piece on the compute thread and returns the batch's results when done, None before."""

    def advance(self) -> list | None:
        raise NotImplementedError


class _Resume:
    """A batch handed back unfinished, waiting in line for its next piece."""

    def __init__(self, work: Unfinished, futures: list):
        self.work, self.futures = work, futures


class RequestBatcher:
    def __init__(self, run_batch: Callable[[list], list], max_batch: int, max_wait_s: float,
                 key: Callable[[Any], Any] = id, kind: Callable[[Any], Any] = lambda request: None,
                 size: Callable[[Any], int] = lambda request: 1,
                 wait: Callable[[Any], float] | None = None):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch = {max_batch} must be >= 1 and max_wait_s = {max_wait_s} >= 0")
        self.run_batch, self.max_batch, self.max_wait_s = run_batch, max_batch, max_wait_s
        self.wait = wait or (lambda kind: max_wait_s)   # a kind's own gathering window, if it has one
        self.key, self.kind, self.size = key, kind, size
        self.queue: asyncio.Queue | None = None
        self.waiting: list = []                     # arrived, not yet run: (request, future) or (_CONTROL, ...)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.batch_sizes: list[int] = []
        self.batch_kinds: list[str] = []            # the name of each batch's kind (its first item if a tuple)
        self.pieces = 0                             # pieces of unfinished batches run after their first
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

    def _take(self, kind, batch: list) -> bool:
        """Moves waiting requests of `kind` into batch, in arrival order up to the first control call; True when
        the batch must close (full, a key seen twice, or a control call next in line for this batch)."""
        keys = {self.key(request) for request, _ in batch}
        rows = sum(self.size(request) for request, _ in batch)
        closed, kept = False, []
        for item in self.waiting:
            request = item[0]
            if closed or request is _CONTROL or isinstance(request, _Resume) or self.kind(request) != kind:
                closed = closed or request is _CONTROL
                kept.append(item)
                continue
            size = self.size(request)
            if self.key(request) in keys or (batch and rows + size > self.max_batch):
                closed = True
                kept.append(item)
                continue
            batch.append(item)
            keys.add(self.key(request))
            rows += size
            closed = rows >= self.max_batch
        self.waiting = kept
        return closed

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.waiting:
                self.waiting.append(await self.queue.get())
            while not self.queue.empty():
                self.waiting.append(self.queue.get_nowait())
            if self.waiting[0][0] is _CONTROL:
                fn, future = self.waiting.pop(0)[1]
                await self._settle([future], loop.run_in_executor(self.executor, fn), single=True)
                continue
            if isinstance(self.waiting[0][0], _Resume):
                resume = self.waiting.pop(0)[0]
                self.pieces += 1
                await self._settle(resume.futures, loop.run_in_executor(self.executor, resume.work.advance),
                                   work=resume.work)
                continue
            batch: list = []
            kind = self.kind(self.waiting[0][0])   # the oldest waiting request opens the batch
            deadline = loop.time() + self.wait(kind)
            while not self._take(kind, batch):
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    self.waiting.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            self.batch_sizes.append(len(batch))
            self.batch_kinds.append(str(kind[0] if isinstance(kind, tuple) else kind))
            requests = [request for request, _ in batch]
            await self._settle([f for _, f in batch], loop.run_in_executor(self.executor, self.run_batch, requests))

    async def _settle(self, futures: list, call, single: bool = False, work: Unfinished | None = None) -> None:
        """Awaits the compute thread's `call`; hands its results to the callers, or puts unfinished work back in
        line (`work`: the batch `call` advanced)."""
        try:
            results = await call
        except Exception as error:  # every caller of the batch hears of it; the loop goes on
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        if isinstance(results, Unfinished) or (results is None and work is not None):
            self._resume_later(_Resume(results if isinstance(results, Unfinished) else work, futures))
            return
        for future, result in zip(futures, [results] if single else results):
            if not future.done():  # a caller that gave up (cancelled) is skipped
                future.set_result(result)

    def _resume_later(self, resume: _Resume) -> None:
        """Behind every request that arrived meanwhile (they go first: a request waits for at most one piece of
        each batch in progress), but before the first control call, which must not run in the middle of a batch."""
        while not self.queue.empty():
            self.waiting.append(self.queue.get_nowait())
        at = next((i for i, item in enumerate(self.waiting) if item[0] is _CONTROL), len(self.waiting))
        self.waiting.insert(at, (resume, None))

    def stats(self) -> dict:
        sizes = self.batch_sizes
        by_kind: dict[str, dict[str, int]] = {}
        for name, size in zip(self.batch_kinds, sizes):
            counts = by_kind.setdefault(name, {"batches": 0, "requests": 0})
            counts["batches"] += 1
            counts["requests"] += size
        return {"batches": len(sizes), "requests": sum(sizes),
                "mean_batch": sum(sizes) / len(sizes) if sizes else 0.0,
                "mean_fill": sum(sizes) / len(sizes) / self.max_batch if sizes else 0.0, "by_kind": by_kind,
                "resumed_pieces": self.pieces}

    def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        self.executor.shutdown(wait=False)
