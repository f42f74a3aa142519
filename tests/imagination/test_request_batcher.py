"""RequestBatcher in a plain asyncio loop: batch bounds, per-caller results, per-key order, control calls."""

from __future__ import annotations

import asyncio
import time

import pytest

from system.imagination.request_batcher import RequestBatcher


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
                     "by_kind": {"None": {"batches": 3, "requests": 10}}}


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
