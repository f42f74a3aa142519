"""RequestBatcher in a plain asyncio loop: batch bounds, per-caller results, per-key order, control calls, batches
run a piece at a time."""

from __future__ import annotations

import asyncio
import time

import pytest

from system.imagination.request_batcher import RequestBatcher, Unfinished


def run(coroutine):
    return asyncio.run(coroutine)


def recording(log: list):
    def run_batch(requests):
        log.append(list(requests))
        return [(r, len(requests)) for r in requests]
    return run_batch


def test_concurrent_callers_are_batched_up_to_max_batch_and_each_gets_its_own_result():
    log = []

    async def main():
        batcher = RequestBatcher(recording(log), max_batch=4, max_wait_s=0.05)
        results = await asyncio.gather(*[batcher.submit(("caller", k)) for k in range(10)])
        batcher.close()
        return results, batcher.stats()

    results, stats = run(main())
    assert [r for r, _ in results] == [("caller", k) for k in range(10)]
    assert [len(b) for b in log] == [4, 4, 2]
    assert stats == {"batches": 3, "requests": 10, "mean_batch": 10 / 3, "mean_fill": 10 / 12,
                     "by_kind": {"None": {"batches": 3, "requests": 10}}, "resumed_pieces": 0}


def test_a_lone_request_waits_at_most_max_wait():
    async def main():
        batcher = RequestBatcher(recording([]), max_batch=64, max_wait_s=0.01)
        start = time.perf_counter()
        await batcher.submit("alone")
        batcher.close()
        return time.perf_counter() - start

    assert run(main()) < 0.5  # 10 ms window; generous for a loaded 2-core box


def test_two_requests_of_one_key_never_share_a_batch_and_keep_their_order():
    log = []

    async def main():
        batcher = RequestBatcher(recording(log), max_batch=8, max_wait_s=0.05, key=lambda r: r[0])
        await asyncio.gather(*[batcher.submit(r) for r in [("a", 0), ("b", 0), ("a", 1), ("c", 0), ("a", 2)]])
        batcher.close()

    run(main())
    assert log == [[("a", 0), ("b", 0)], [("a", 1), ("c", 0)], [("a", 2)]]


def test_a_control_call_runs_between_the_requests_before_and_after_it():
    log, state = [], {"version": 0}

    def run_batch(requests):
        log.append([(r, state["version"]) for r in requests])
        return [state["version"]] * len(requests)

    def swap():
        state["version"] += 1
        return state["version"]

    async def main():
        batcher = RequestBatcher(run_batch, max_batch=8, max_wait_s=0.05)
        before = [asyncio.ensure_future(batcher.submit(k)) for k in range(3)]
        await asyncio.sleep(0)  # the three are queued first
        control = asyncio.ensure_future(batcher.control(swap))
        await asyncio.sleep(0)
        after = [asyncio.ensure_future(batcher.submit(k)) for k in range(3, 5)]
        out = await asyncio.gather(*before, control, *after)
        batcher.close()
        return out

    assert run(main()) == [0, 0, 0, 1, 1, 1]
    assert log == [[(0, 0), (1, 0), (2, 0)], [(3, 1), (4, 1)]]


def test_a_failing_batch_fails_its_callers_only():
    async def main():
        def run_batch(requests):
            if "bad" in requests:
                raise ValueError("bad request in batch")
            return requests

        batcher = RequestBatcher(run_batch, max_batch=2, max_wait_s=0.05)
        first = await asyncio.gather(batcher.submit("bad"), batcher.submit("x"), return_exceptions=True)
        second = await batcher.submit("y")
        batcher.close()
        return first, second

    first, second = run(main())
    assert all(isinstance(e, ValueError) for e in first) and second == "y"


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="max_batch = 0"):
        RequestBatcher(lambda r: r, max_batch=0, max_wait_s=0.01)


def test_kinds_never_share_a_batch_and_neither_starves_the_other():
    log = []

    async def main():
        # ("act", n) one row each; ("imagine", n, rows): its start contexts count as rows
        batcher = RequestBatcher(recording(log), max_batch=4, max_wait_s=0.05, kind=lambda r: r[0],
                                 size=lambda r: r[2] if r[0] == "imagine" else 1)
        flood = [("act", k) for k in range(10)] + [("imagine", 0, 3)] + [("act", k) for k in range(10, 20)] \
            + [("imagine", 1, 2), ("imagine", 2, 5)]
        await asyncio.gather(*[batcher.submit(r) for r in flood])
        batcher.close()
        return flood

    flood = run(main())
    assert all(len({r[0] for r in batch}) == 1 for batch in log)   # one kind per batch
    assert sorted(r for batch in log for r in batch) == sorted(flood)
    order = [r for batch in log for r in batch]
    for request in flood:  # every batch before a request's own holds a request older than it (no starvation)
        mine = next(i for i, batch in enumerate(log) if request in batch)
        assert all(min(flood.index(r) for r in batch) < flood.index(request) for batch in log[:mine]), request
    assert [r for r in order if r[0] == "act"] == [r for r in flood if r[0] == "act"]   # per-kind order kept
    imagine = [batch for batch in log if batch[0][0] == "imagine"]
    # rows: 3 alone (with 2 more it would hold 5 > 4); 2 alone (the next holds 5 rows); 5 > max_batch runs alone
    assert imagine == [[("imagine", 0, 3)], [("imagine", 1, 2)], [("imagine", 2, 5)]]


def test_a_control_call_is_a_barrier_for_every_kind():
    log, state = [], {"version": 0}

    def run_batch(requests):
        log.append([(r, state["version"]) for r in requests])
        return [state["version"]] * len(requests)

    def swap():
        state["version"] += 1
        return state["version"]

    async def main():
        batcher = RequestBatcher(run_batch, max_batch=8, max_wait_s=0.05, kind=lambda r: r[0])
        before = [asyncio.ensure_future(batcher.submit(r)) for r in [("a", 0), ("i", 0), ("a", 1)]]
        await asyncio.sleep(0)
        control = asyncio.ensure_future(batcher.control(swap))
        await asyncio.sleep(0)
        after = [asyncio.ensure_future(batcher.submit(r)) for r in [("i", 1), ("a", 2)]]
        out = await asyncio.gather(*before, control, *after)
        batcher.close()
        return out

    assert run(main()) == [0, 0, 0, 1, 1, 1]
    assert log == [[(("a", 0), 0), (("a", 1), 0)], [(("i", 0), 0)], [(("i", 1), 1)], [(("a", 2), 1)]]


class Pieces(Unfinished):
    """A batch of "long" requests done in `pieces` pieces; `during(k)` runs inside piece k (k = 0: the start)."""

    def __init__(self, requests, pieces, log, state, during):
        self.requests, self.pieces, self.log, self.state, self.during = requests, pieces, log, state, during
        self.done, self.versions = 0, [state["version"]]

    def advance(self):
        self.done += 1
        self.log.append(("piece", self.done))
        self.versions.append(self.state["version"])
        if self.during(self.done) == "fail":
            raise RuntimeError(f"piece {self.done} failed")
        return [tuple(self.versions)] * len(self.requests) if self.done == self.pieces else None


def piecewise(log, state, during, pieces=3):
    def run_batch(requests):
        if requests[0][0] == "long":
            log.append(("start", *requests))
            during(0)
            return Pieces(requests, pieces, log, state, during)
        log.append(("acts", *requests, state["version"]))
        return [state["version"]] * len(requests)
    return run_batch


def arrive(batcher, loop, items, pending):
    """From the compute thread: submits items (requests, or ("control", fn)) one after another, each in the
    batcher's queue before the next, while the current piece still runs."""
    for item in items:
        queued = batcher.queue.qsize()
        call = batcher.control(item[1]) if item[0] == "control" else batcher.submit(item)
        pending.append(asyncio.run_coroutine_threadsafe(call, loop))
        while batcher.queue.qsize() == queued:
            time.sleep(0.001)


def test_requests_arriving_during_an_unfinished_batch_run_between_its_pieces():
    log, state, pending = [], {"version": 0}, []

    async def main():
        loop = asyncio.get_running_loop()
        batcher = RequestBatcher(None, max_batch=8, max_wait_s=0.0, kind=lambda r: r[0])
        arrivals = {0: [("act", 0)], 1: [("act", 1), ("act", 2)]}
        batcher.run_batch = piecewise(log, state, lambda k: arrive(batcher, loop, arrivals.get(k, []), pending))
        result = await batcher.submit(("long", 0))
        others = [await asyncio.wrap_future(f) for f in pending]
        batcher.close()
        return result, others, batcher.stats()

    result, others, stats = run(main())
    assert log == [("start", ("long", 0)), ("acts", ("act", 0), 0), ("piece", 1), ("acts", ("act", 1), ("act", 2), 0),
                   ("piece", 2), ("piece", 3)]
    assert result == (0, 0, 0, 0) and others == [0, 0, 0]
    assert stats["batches"] == 3 and stats["resumed_pieces"] == 3


def test_a_control_call_arriving_during_an_unfinished_batch_waits_for_its_last_piece():
    log, state, pending = [], {"version": 0}, []

    def swap():
        state["version"] += 1
        log.append(("swap", state["version"]))
        return state["version"]

    async def main():
        loop = asyncio.get_running_loop()
        batcher = RequestBatcher(None, max_batch=8, max_wait_s=0.0, kind=lambda r: r[0])
        arrivals = {1: [("act", 0), ("control", swap), ("act", 1)]}
        batcher.run_batch = piecewise(log, state, lambda k: arrive(batcher, loop, arrivals.get(k, []), pending))
        result = await batcher.submit(("long", 0))
        others = [await asyncio.wrap_future(f) for f in pending]
        batcher.close()
        return result, others

    result, others = run(main())
    # the act before the swap goes between the pieces; the swap and the act after it wait for the last piece
    assert log == [("start", ("long", 0)), ("piece", 1), ("acts", ("act", 0), 0), ("piece", 2), ("piece", 3),
                   ("swap", 1), ("acts", ("act", 1), 1)]
    assert result == (0, 0, 0, 0) and others == [0, 1, 1]


def test_a_failing_piece_fails_its_callers_only_and_the_batcher_goes_on():
    log, state, pending = [], {"version": 0}, []

    async def main():
        loop = asyncio.get_running_loop()
        batcher = RequestBatcher(None, max_batch=8, max_wait_s=0.0, kind=lambda r: r[0])

        def during(k):
            if k == 1:
                arrive(batcher, loop, [("act", 0)], pending)
            return "fail" if k == 2 else None
        batcher.run_batch = piecewise(log, state, during)
        with pytest.raises(RuntimeError, match="piece 2 failed"):
            await batcher.submit(("long", 0))
        others = [await asyncio.wrap_future(f) for f in pending]
        after = await batcher.submit(("act", 1))
        batcher.close()
        return others, after

    assert run(main()) == ([0], 0)
    assert log[-1] == ("acts", ("act", 1), 0) and ("piece", 3) not in log
