"""A replay store sharded over several Redis servers: every table is split by episode across n servers.

    store = ShardedStore(cfg, [RedisStore(cfg, client_k, shard=(k, n)) for k, client_k in enumerate(clients)])
    store.add_many("real", chunks)                 # each chunk goes to shard crc32(episode_id) % n, in parallel
    batch = store.sample("real", 16, 64)           # start steps drawn over all shards, read in parallel

In: `Chunk`s; out: `Batch`es, as every store (store.py). One Redis is one core and one machine's memory; here a
table's chunks, index and counters are spread over n servers, each holding the complete table layout
(redis_scripts.py) for its own episodes, so a sequence never spans two servers.
- add: chunks are grouped by shard and each group is sent as one pipeline, all shards at once (threads).
- sample: each candidate start picks a shard with probability proportional to the steps it stores, and a
  step within it; every shard evaluates its candidates at once (picks that do not count), the first `want`
  accepted picks in candidate order are kept and read, with the limiter count, in one transaction per shard.
  That is the single store's rejection sampling over all stored steps, so every window is equally likely
  (tested with a chi-square test). Shard sizes are refreshed at most every REFRESH_S.
- Shard k of n holds its share of capacity_steps and min_size_to_sample and applies the table's
  samples_per_insert and error_buffer on its own counters: the ratio holds on every shard, so the table as a
  whole may drift from it by up to n x error_buffer. Recency weights positions within a shard.
- Every client must list the same servers in the same order (replay.url): each server records which shard it
  holds and refuses a client that disagrees.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from system.replay.chunk import Chunk, ChunkError, StepLayout
from system.replay.config import ReplayConfig
from system.replay.redis_store import RedisStore
from system.replay.store import AddResult, ReplayError, ReplayStore, Round, TableStats, WindowStats

REFRESH_S = 1.0  # how stale the per-shard step counts that steer sampling may get


def shard_of(episode_id: str, shards: int) -> int:
    """The shard that holds every chunk of an episode (stable across processes and runs)."""
    return zlib.crc32(episode_id.encode()) % shards


class ShardedStore(ReplayStore):
    def __init__(self, cfg: ReplayConfig, shards: list[RedisStore], seed: int | None = None):
        super().__init__(cfg, seed)
        if [s.shard for s in shards] != [(k, len(shards)) for k in range(len(shards))]:
            raise ValueError("shards must be RedisStores for shard (0, n), (1, n), ... in that order")
        self.shards = shards
        self._pool = ThreadPoolExecutor(max_workers=len(shards), thread_name_prefix="replay-shard")
        self._weights: dict[str, tuple[float, np.ndarray]] = {}
        self._checked: set[str] = set()

    @property
    def malformed_skipped(self) -> int:
        return sum(s.malformed_skipped for s in self.shards)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for shard in self.shards:
            shard.close()

    def _each(self, calls: dict[int, callable]) -> dict[int, object]:
        """Runs one call per shard at once; every call finishes before the first error is raised."""
        futures = {k: self._pool.submit(call) for k, call in calls.items()}
        results, error = {}, None
        for k, future in futures.items():
            try:
                results[k] = future.result()
            except BaseException as e:  # noqa: BLE001 - re-raised below, once all shards are done
                error = error or e
        if error is not None:
            raise error
        return results

    def _shard(self, episode_id: str) -> RedisStore:
        return self.shards[shard_of(episode_id, len(self.shards))]

    # Writing.
    def add_many(self, table: str, chunks: list[Chunk], timeout: float | None = None) -> list[AddResult]:
        smallest = min(s.table_config(table).capacity_steps for s in self.shards)
        for chunk in chunks:
            if isinstance(chunk, Chunk) and chunk.length > smallest:
                raise ChunkError(f"chunk (episode {chunk.episode_id!r}, step {chunk.step_offset}) has {chunk.length} "
                                 f"steps, more than table {table!r} holds on one of its {len(self.shards)} servers "
                                 f"(capacity_steps = {self.table_config(table).capacity_steps}, split between them)")
        return super().add_many(table, chunks, timeout)

    def _try_add(self, table: str, chunks: list[Chunk]) -> list[AddResult | None]:
        self._check_all(table)
        groups: dict[int, list[int]] = {}
        for i, chunk in enumerate(chunks):
            groups.setdefault(shard_of(chunk.episode_id, len(self.shards)), []).append(i)
        replies = self._each({k: (lambda k=k, idx=idx: self.shards[k]._try_add(table, [chunks[i] for i in idx]))
                              for k, idx in groups.items()})
        results: list[AddResult | None] = [None] * len(chunks)
        for k, idx in groups.items():
            for i, result in zip(idx, replies[k]):
                results[i] = None if result is None else dataclasses.replace(result, shard=k)
        return results

    # Sampling.
    def _shard_steps(self, table: str) -> np.ndarray:
        stamp, weights = self._weights.get(table, (-np.inf, None))
        if time.monotonic() - stamp > REFRESH_S:
            weights = np.array([v for _, v in sorted(self._each(
                {k: (lambda s=s: s.stats(table).steps) for k, s in enumerate(self.shards)}).items())], float)
            self._weights[table] = (time.monotonic(), weights)
        return weights

    def _try_sample(self, table, want, length, recency, counted, randoms):
        self._check_all(table)
        weights = self._shard_steps(table)
        if weights.sum() <= 0:
            return None  # nothing stored anywhere: the limiter's "not yet"
        assigned = np.minimum(np.searchsorted(np.cumsum(weights) / weights.sum(), self._rng.random(len(randoms)),
                                              side="right"), len(self.shards) - 1)
        candidates = {k: np.flatnonzero(assigned == k) for k in range(len(self.shards))}
        candidates = {k: idx for k, idx in candidates.items() if len(idx)}
        picks = self._each({k: (lambda k=k, idx=idx: self._pick_on(k, table, length, recency, randoms[idx]))
                            for k, idx in candidates.items()})
        picked = {k: p for k, p in picks.items() if p is not None}
        if not picked:
            return None
        fresh = weights.copy()
        for k in picked:
            fresh[k] = self.shards[k].stored_steps.get(table, fresh[k])
        self._weights[table] = (self._weights[table][0], fresh)
        layouts = {p[0] for p in picked.values() if p[0] is not None}
        if len(layouts) > 1:
            raise ReplayError(f"the shards of table {table!r} hold different step layouts: "
                              f"{sorted(layout.key() for layout in layouts)}")
        layout = next(iter(layouts), None)
        # Accepted picks in one global candidate order; the first `want` are kept (rejection sampling over all
        # stored steps). Shards that said "not now" contribute nothing this round.
        ranked = sorted((int(candidates[k][plan[0]]), k, plan[1:]) for k, (_, _, plans) in picked.items()
                        for plan in plans)[:want]
        if len(ranked) == want:
            examined = ranked[-1][0] + 1
        else:
            examined = len(randoms)
        chosen: dict[int, list] = {}
        for _, k, plan in ranked:
            chosen.setdefault(k, []).append(plan)
        reads = self._each({k: (lambda k=k, plans=plans: self._read_on(k, table, layout, plans, length, counted))
                            for k, plans in chosen.items()})
        if chosen and all(found is None for found in reads.values()) and len(picked) == len(candidates):
            return None  # every shard with picks is behind the limiter
        sequences = [sequence for k in sorted(reads) for sequence in (reads[k] or [])]
        return Round(sequences, layout, examined)

    def _pick_on(self, k, table, length, recency, randoms):
        shard = self.shards[k]
        with shard._errors(f"sampling table {table!r}"):
            shard._ensure_table(table)
            return shard.pick(table, len(randoms), length, recency, False, randoms)

    def _read_on(self, k, table, layout, plans, length, counted):
        shard = self.shards[k]
        with shard._errors(f"sampling table {table!r}"):
            return shard.read(table, layout, plans, length, counted, count_now=True)

    def _window_stats(self, table: str, length: int) -> WindowStats:
        parts = self._each({k: (lambda s=s: s._window_stats(table, length)) for k, s in enumerate(self.shards)})
        return WindowStats(windows=sum(p.windows for p in parts.values()),
                           longest=max(p.longest for p in parts.values()),
                           episodes=sum(p.episodes for p in parts.values()),
                           chunks=sum(p.chunks for p in parts.values()), steps=sum(p.steps for p in parts.values()))

    def _wait(self, table: str, deadline: float, attempt: int = 0) -> bool:
        return self.shards[0]._wait(table, deadline, attempt)

    # Reading.
    def get_chunk(self, table: str, episode_id: str, step_offset: int) -> Chunk:
        return self._shard(episode_id).get_chunk(table, episode_id, step_offset)

    def episode_chunks(self, table: str, episode_id: str) -> list[tuple[int, int]]:
        return self._shard(episode_id).episode_chunks(table, episode_id)

    def check_table(self, table: str) -> None:
        self._each({k: (lambda s=s: s.check_table(table)) for k, s in enumerate(self.shards)})
        self._checked.add(table)

    def _check_all(self, table: str) -> None:
        # Every server records which shard it holds the first time a table is used, even the ones this add
        # does not touch, so that a client listing the servers in another order is refused everywhere.
        if table not in self._checked:
            self.check_table(table)

    def table_layout(self, table: str) -> StepLayout | None:
        layouts = {layout for layout in self._each({k: (lambda s=s: s.table_layout(table))
                                                    for k, s in enumerate(self.shards)}).values() if layout}
        if len(layouts) > 1:
            raise ReplayError(f"the shards of table {table!r} hold different step layouts: "
                              f"{sorted(layout.key() for layout in layouts)}")
        return next(iter(layouts), None)

    def stats(self, table: str) -> TableStats:
        parts = list(self._each({k: (lambda s=s: s.stats(table)) for k, s in enumerate(self.shards)}).values())
        total = {name: sum(getattr(p, name) for p in parts) for name in
                 ("chunks", "steps", "inserted_steps", "sampled_steps", "evicted_chunks", "evicted_steps")}
        return TableStats(capacity_steps=self.table_config(table).capacity_steps, **total)
