"""KV-cache slots: each its own cache, the lowest free one first, exhaustion and double release are errors."""

import pytest

from system.play.slots import SlotPool, SlotsExhausted, cache_bytes
from tests.helpers.play_run import tiny_play_models


def test_slots_are_separate_caches_taken_and_given_back():
    _, dynamics = tiny_play_models()
    pool = SlotPool(dynamics, slots=2)
    (a, cache_a), (b, cache_b) = pool.acquire(), pool.acquire()
    assert (a, b) == (0, 1) and pool.free_count == 0
    assert cache_a.k.data_ptr() != cache_b.k.data_ptr() and cache_a.batch == 1
    assert cache_bytes(cache_a) == 2 * cache_a.k.numel() * 4
    with pytest.raises(SlotsExhausted, match="all 2 play slots are in use"):
        pool.acquire()
    pool.release(a)
    assert pool.free_count == 1 and pool.acquire()[0] == a
    pool.release(b)
    with pytest.raises(ValueError, match="slot 1 is not held"):
        pool.release(b)
    with pytest.raises(ValueError, match="slots >= 1"):
        SlotPool(dynamics, slots=0)
