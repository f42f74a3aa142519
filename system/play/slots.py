"""The KV-cache slots of a play server: one per browser connection, taken on connect, given back on disconnect.

    pool = SlotPool(dynamics, slots=4)
    slot, cache = pool.acquire()      # cache: a batch-1 ring KVCache, (L_t, 1, S, H_kv, C, Dh) keys and values
    pool.release(slot)
    pool.free_count                   # slots no connection holds

Each slot is its own cache, allocated once when the server starts, so a connection can never read or write
another's keys and values, and the memory a server needs is fixed by --slots. acquire raises SlotsExhausted
(the world-model service's error) when every slot is taken.
"""

from __future__ import annotations

import heapq

from system.imagination.acting_service import SlotsExhausted
from system.model.kv_cache import KVCache


class SlotPool:
    def __init__(self, dynamics, slots: int):
        if slots < 1:
            raise ValueError(f"a play server needs slots >= 1, got {slots}")
        param = next(dynamics.parameters())
        self.caches = [dynamics.transformer.new_cache(1, param.device, param.dtype) for _ in range(slots)]
        self.free = list(range(slots))           # a heap: the lowest free slot goes first

    @property
    def slots(self) -> int:
        return len(self.caches)

    @property
    def free_count(self) -> int:
        return len(self.free)

    def acquire(self) -> tuple[int, KVCache]:
        if not self.free:
            raise SlotsExhausted(f"all {self.slots} play slots are in use (one per open page); close a page or "
                                 "start the server with more --slots")
        slot = heapq.heappop(self.free)
        return slot, self.caches[slot]

    def release(self, slot: int) -> None:
        if not 0 <= slot < self.slots or slot in self.free:
            raise ValueError(f"slot {slot} is not held (slots 0..{self.slots - 1})")
        heapq.heappush(self.free, slot)


def cache_bytes(cache: KVCache) -> int:
    """Memory of one slot's keys and values."""
    return sum(t.numel() * t.element_size() for t in (cache.k, cache.v))

