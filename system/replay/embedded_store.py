"""In-process replay store with the Redis store's interface, for single-machine runs without a server.

In: validated `Chunk`s; out: `Batch`es (see store.py). Chunks are kept as read-only arrays of packed step
records, the same layout Redis stores, and sampled with the same algorithm and random numbers. Thread-safe
(one lock; the rate limiter waits on a condition variable). It lives in one process: to share it between Ray
actors, put it inside one actor; across machines use the Redis backend.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from system.replay.chunk import Chunk, ChunkError, StepLayout, check_size
from system.replay.config import ReplayConfig
from system.replay.store import AddResult, ReplayStore, Round, Sequence, TableStats, WindowStats, pick_index, \
    window_stats


@dataclass
class _Stored:
    episode_id: str
    step_offset: int
    task_id: int
    is_last: bool
    records: np.ndarray  # (T,) record dtype, read-only
    action_classes: tuple[int, ...] | None = None


@dataclass
class _Table:
    layout: StepLayout | None = None
    chunks: dict[int, _Stored] = field(default_factory=dict)  # seq -> chunk; seqs head..tail-1, FIFO order
    episodes: dict[str, dict[int, int]] = field(default_factory=dict)  # episode_id -> step_offset -> seq
    head: int = 0
    tail: int = 0
    # positions[seq - positions_base]: the chunk's first step counted over every step ever inserted, so the
    # stored steps are positions [positions[head], inserted_steps) and a step is found by bisection.
    positions: list[int] = field(default_factory=list)
    positions_base: int = 0
    steps: int = 0
    inserted_steps: int = 0
    sampled_steps: int = 0
    evicted_chunks: int = 0
    evicted_steps: int = 0


class EmbeddedStore(ReplayStore):
    def __init__(self, cfg: ReplayConfig, seed: int | None = None):
        super().__init__(cfg, seed)
        self._changed = threading.Condition()
        self._tables: dict[str, _Table] = {}

    def _table(self, name: str) -> _Table:
        self.table_config(name)
        return self._tables.setdefault(name, _Table())

    def _try_add(self, table: str, chunks: list[Chunk]) -> list[AddResult | None]:
        return [self._try_add_one(table, chunk) for chunk in chunks]

    def _try_add_one(self, table: str, chunk: Chunk) -> AddResult | None:
        check_size(chunk, self.cfg.max_chunk_bytes)
        records = chunk.records()
        records.flags.writeable = False
        capacity = self.table_config(table).capacity_steps
        with self._changed:
            t = self._table(table)
            existing = t.episodes.get(chunk.episode_id, {}).get(int(chunk.step_offset))
            if existing is not None:
                return AddResult(inserted=False, seq=existing)
            if t.layout is not None and not t.layout.accepts(chunk.layout):
                raise ChunkError(f"chunk (episode {chunk.episode_id!r}) has step layout {chunk.layout.key()}, "
                                 f"table {table!r} holds {t.layout.key()}")
            if not self.limiter(table).can_insert(t.steps, t.inserted_steps, t.sampled_steps, chunk.length):
                return None
            t.layout = t.layout or chunk.layout
            seq = t.tail
            t.tail += 1
            t.chunks[seq] = _Stored(chunk.episode_id, int(chunk.step_offset), int(chunk.task_id),
                                    bool(chunk.is_last), records, chunk.action_classes)
            t.episodes.setdefault(chunk.episode_id, {})[int(chunk.step_offset)] = seq
            t.positions.append(t.inserted_steps)
            t.steps += chunk.length
            t.inserted_steps += chunk.length
            evicted = 0
            while t.steps > capacity:
                self._evict_oldest(t)
                evicted += 1
            self._changed.notify_all()
            return AddResult(inserted=True, seq=seq, evicted_chunks=evicted)

    @staticmethod
    def _evict_oldest(t: _Table) -> None:
        old = t.chunks.pop(t.head)
        offsets = t.episodes[old.episode_id]
        del offsets[old.step_offset]
        if not offsets:
            del t.episodes[old.episode_id]
        t.head += 1
        t.steps -= len(old.records)
        t.evicted_chunks += 1
        t.evicted_steps += len(old.records)
        dead = t.head - t.positions_base
        if dead > 1024 and 2 * dead > len(t.positions):  # drop evicted positions now and then, not every time
            del t.positions[:dead]
            t.positions_base = t.head

    def _try_sample(self, table, want, length, recency, counted, randoms):
        limiter = self.limiter(table)
        with self._changed:
            t = self._table(table)
            allowed = (limiter.can_sample(t.steps, t.inserted_steps, t.sampled_steps, want * length) if counted
                       else t.steps >= limiter.min_size_to_sample)
            if not allowed:
                return None
            found: list[Sequence] = []
            examined = 0
            low = t.head - t.positions_base
            start = t.positions[low] if t.steps else t.inserted_steps
            for u in randoms:
                if len(found) == want or not t.steps:
                    break
                examined += 1
                target = start + pick_index(u, t.steps, recency)  # a stored step, as the Lua sampler picks it
                i = bisect.bisect_right(t.positions, target, lo=low) - 1
                first = t.chunks[t.positions_base + i]
                sequence = self._follow(t, first, target - t.positions[i], length)
                if sequence is not None:
                    found.append(sequence)
            if counted:
                t.sampled_steps += len(found) * length
                self._changed.notify_all()
            return Round(found, t.layout, examined)

    def _window_stats(self, table: str, length: int) -> WindowStats:
        with self._changed:
            t = self._table(table)
            return window_stats(((c.episode_id, c.step_offset, len(c.records)) for c in t.chunks.values()), length)

    @staticmethod
    def _follow(t: _Table, first: _Stored, offset: int, length: int) -> Sequence | None:
        """The `length` steps from `offset` in `first`, following the episode's next chunks; None if missing."""
        pieces = [first.records[offset:offset + length]]
        need = length - len(pieces[0])
        next_offset = first.step_offset + len(first.records)
        offsets = t.episodes[first.episode_id]
        while need > 0:
            seq = offsets.get(next_offset)
            if seq is None:
                return None
            records = t.chunks[seq].records
            pieces.append(records[:need])
            need -= len(pieces[-1])
            next_offset += len(records)
        return Sequence(first.episode_id, first.step_offset + offset, first.task_id, pieces)

    def _wait(self, table: str, deadline: float, attempt: int = 0) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        with self._changed:
            self._changed.wait(timeout=remaining)
        return True

    def table_layout(self, table: str) -> StepLayout | None:
        with self._changed:
            return self._table(table).layout

    def get_chunk(self, table: str, episode_id: str, step_offset: int) -> Chunk:
        with self._changed:
            t = self._table(table)
            seq = t.episodes.get(episode_id, {}).get(int(step_offset))
            if seq is None:
                raise KeyError(f"table {table!r} stores no chunk of episode {episode_id!r} at step {step_offset}")
            stored = t.chunks[seq]
        return Chunk.from_records(stored.records, stored.episode_id, stored.step_offset, stored.task_id,
                                  stored.is_last, stored.action_classes)

    def episode_chunks(self, table: str, episode_id: str) -> list[tuple[int, int]]:
        with self._changed:
            t = self._table(table)
            offsets = t.episodes.get(episode_id, {})
            return sorted((offset, len(t.chunks[seq].records)) for offset, seq in offsets.items())

    def stats(self, table: str) -> TableStats:
        with self._changed:
            t = self._table(table)
            return TableStats(chunks=t.tail - t.head, steps=t.steps,
                              capacity_steps=self.table_config(table).capacity_steps,
                              inserted_steps=t.inserted_steps, sampled_steps=t.sampled_steps,
                              evicted_chunks=t.evicted_chunks, evicted_steps=t.evicted_steps)
