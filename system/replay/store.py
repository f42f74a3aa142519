"""The replay store interface that both backends implement, and the batch it returns.

    store.add(table, chunk) -> AddResult                      idempotent per (table, episode_id, step_offset)
    store.add_many(table, chunks) -> list[AddResult]          the same, in one round trip
    store.sample(table, B, T, recency=0.0) -> Batch           (B, T) sequences inside one episode, rate limited
    store.sample_contexts(table, B, C) -> Batch               (B, C) start contexts for imagination
    store.get_chunk / episode_chunks / episode_steps / stats
    store.check_table(table), store.table_layout(table)       settings and step layout, checked before work

Sampling draws a start step from the stored steps directly (uniformly, or weighted towards recent ones with
`recency` r > 0: the step's position x in [0, 1) from oldest to newest has density (1 + r) x^r); a start whose
T steps are not all stored in its episode is rejected and drawn again. Every window of T consecutive stored
steps of one episode is therefore equally likely under r = 0, and a draw is accepted with probability
(windows / stored steps), whatever the mix of chunk and episode lengths. The number of candidates per round
follows the acceptance seen so far; when many draws find nothing, the backend counts the windows exactly, and
a table that holds none says so with the numbers. Both backends consume the same random numbers the same way,
so with the same seed and the same inserts they return the same batch (a contract test checks this).
"""

from __future__ import annotations

import abc
import itertools
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from system.replay.chunk import Chunk, ChunkError, StepLayout
from system.replay.config import ReplayConfig
from system.replay.limiter import RateLimited, RateLimiter

# Each sampling round draws CANDIDATES_PER_SEQUENCE / acceptance candidates per missing sequence (plus a few),
# at most MAX_CANDIDATES, so that rejected picks rarely cost another round trip. After EMPTY_BEFORE_CHECK
# candidates in a row find nothing, the windows are counted exactly (the threshold grows with each count).
CANDIDATES_PER_SEQUENCE = 2
MAX_CANDIDATES = 4096
EMPTY_BEFORE_CHECK = 256


class ReplayError(RuntimeError):
    """The replay store cannot do what was asked (misconfiguration, unreachable server, impossible sample)."""


class NotAcknowledged(ReplayError):
    """An add whose reply never came (timeout, connection lost): the chunks may or may not be stored. Adding
    them again is safe: a stored (episode_id, step_offset) is never stored twice."""


@dataclass(frozen=True)
class AddResult:
    inserted: bool  # False: a chunk with this (episode_id, step_offset) was already stored; nothing changed
    seq: int  # insertion number of the stored chunk (FIFO order within the table, or within its shard)
    evicted_chunks: int = 0  # chunks this add evicted to stay within capacity
    shard: int = 0  # the server that holds it, when the table is sharded over several (sharded_store.py)


@dataclass(frozen=True)
class TableStats:
    chunks: int  # chunks stored now
    steps: int  # steps stored now (<= capacity_steps)
    capacity_steps: int
    inserted_steps: int  # steps ever inserted (duplicates not counted)
    sampled_steps: int  # steps ever sampled through `sample` (the limiter's counter)
    evicted_chunks: int
    evicted_steps: int


@dataclass(frozen=True)
class Batch:
    """B sequences of T steps; leading axes (B, T). `steps` are indices within each sequence's episode."""

    frames: np.ndarray  # (B, T, H, W, C) uint8
    actions: np.ndarray  # (B, T, A) int32, -1 = no action / no label
    rewards: np.ndarray  # (B, T) float32
    terminals: np.ndarray  # (B, T) bool
    steps: np.ndarray  # (B, T) int64
    episode_ids: np.ndarray  # (B,) str
    task_ids: np.ndarray  # (B,) int32, -1 = none


@dataclass(frozen=True)
class WindowStats:
    """What a table holds for sequences of one length (counted exactly, by walking its index)."""

    windows: int  # start steps whose `length` steps are all stored, in one episode
    longest: int  # longest run of consecutive stored steps of one episode
    episodes: int
    chunks: int
    steps: int


def window_stats(chunks: Iterable[tuple[str, int, int]], length: int) -> WindowStats:
    """WindowStats from (episode_id, step_offset, length) of every stored chunk, in any order."""
    by_episode: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for episode_id, offset, steps in chunks:
        by_episode[episode_id].append((offset, steps))
    windows = longest = steps_total = count = 0
    for parts in by_episode.values():
        parts.sort()
        run, end = 0, None
        for offset, steps in parts:
            if offset != end:  # the first chunk, or a gap: the run before it ends (as sampling follows chunks)
                windows, longest, run = windows + max(0, run - length + 1), max(longest, run), 0
            run, end = run + steps, offset + steps
            steps_total, count = steps_total + steps, count + 1
        windows, longest = windows + max(0, run - length + 1), max(longest, run)
    return WindowStats(windows, longest, len(by_episode), count, steps_total)


@dataclass
class Round:
    """What one `_try_sample` call found."""

    sequences: list  # of Sequence
    layout: StepLayout | None
    examined: int  # candidates looked at (a backend stops once it has found `want`)


@dataclass
class Sequence:
    """One sampled sequence before assembly: its pieces are step records, in order, that add up to T."""

    episode_id: str
    start: int
    task_id: int
    pieces: list  # of (n,) record arrays (StepLayout.record_dtype)


def assemble(sequences: list[Sequence], layout: StepLayout, length: int) -> Batch:
    """Copies the sequences' step records into (B, T, ...) arrays (one copy per field)."""
    batch = len(sequences)
    frames = np.empty((batch, length, *layout.frame_shape), np.uint8)
    actions = np.empty((batch, length, layout.action_dim), np.int32)
    rewards = np.empty((batch, length), np.float32)
    terminals = np.empty((batch, length), np.bool_)
    for b, sequence in enumerate(sequences):
        position = 0
        for records in sequence.pieces:
            end = position + len(records)
            frames[b, position:end] = records["frame"]
            actions[b, position:end] = records["action"]
            rewards[b, position:end] = records["reward"]
            terminals[b, position:end] = records["terminal"] != 0
            position = end
        assert position == length, f"sequence of {position} steps assembled, expected {length}"
    starts = np.array([s.start for s in sequences], np.int64)
    return Batch(frames=frames, actions=actions, rewards=rewards, terminals=terminals,
                 steps=starts[:, None] + np.arange(length, dtype=np.int64)[None],
                 episode_ids=np.array([s.episode_id for s in sequences], dtype=str),
                 task_ids=np.array([s.task_id for s in sequences], np.int32))


def pick_index(u: float, count: int, recency: float) -> int:
    """Maps a uniform u in [0, 1) to a position in [0, count) (the Lua sampler does the same arithmetic)."""
    index = int(np.floor(count * u ** (1.0 / (1.0 + recency))))
    return min(index, count - 1)


class ReplayStore(abc.ABC):
    """Shared behaviour: argument checks, waiting on the rate limiter, sampling rounds, batch assembly."""

    def __init__(self, cfg: ReplayConfig, seed: int | None = None):
        self.cfg = cfg
        self._rng = np.random.default_rng(seed)
        self.candidates_drawn = 0  # start steps examined by `sample` and `sample_contexts`, for diagnostics

    # Backend primitives. `None` means "the rate limiter says not now".
    @abc.abstractmethod
    def _try_add(self, table: str, chunks: list[Chunk]) -> list[AddResult | None]: ...

    @abc.abstractmethod
    def _try_sample(self, table: str, want: int, length: int, recency: float, counted: bool,
                    randoms: np.ndarray) -> Round | None:
        """Up to `want` sequences from one uniform per candidate start step, in order; None: rate limited."""

    @abc.abstractmethod
    def _window_stats(self, table: str, length: int) -> WindowStats: ...

    @abc.abstractmethod
    def _wait(self, table: str, deadline: float, attempt: int) -> bool:
        """Waits a little (longer with each attempt) for the table to change; False once past the deadline."""

    @abc.abstractmethod
    def get_chunk(self, table: str, episode_id: str, step_offset: int) -> Chunk:
        """The stored chunk; KeyError when it is not stored (never added, or evicted)."""

    @abc.abstractmethod
    def episode_chunks(self, table: str, episode_id: str) -> list[tuple[int, int]]:
        """(step_offset, length) of each stored chunk of the episode, in step order."""

    @abc.abstractmethod
    def stats(self, table: str) -> TableStats: ...

    def check_table(self, table: str) -> None:
        """Raises before any work when the table's stored settings disagree with this config (Redis: capacity,
        limiter, shard; the message names the config key); creates the table on first use."""
        self.table_config(table)

    @abc.abstractmethod
    def table_layout(self, table: str) -> StepLayout | None:
        """The step layout the table's chunks share; None while it has held none."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Public API.
    def table_config(self, table: str):
        return self.cfg.tables.get(table)

    def limiter(self, table: str) -> RateLimiter:
        t = self.table_config(table)
        return RateLimiter(t.samples_per_insert, t.min_size_to_sample, t.error_buffer)

    def add(self, table: str, chunk: Chunk, timeout: float | None = None) -> AddResult:
        """Stores the chunk, or reports it was already stored. Waits for the rate limiter up to `timeout`
        seconds (default cfg.block_timeout_s; 0 = do not wait), then raises RateLimited."""
        return self.add_many(table, [chunk], timeout)[0]

    def add_many(self, table: str, chunks: list[Chunk], timeout: float | None = None) -> list[AddResult]:
        """`add` for several chunks in one round trip (e.g. the chunks a vector of environments finished);
        each chunk is still committed, deduplicated and rate limited on its own."""
        capacity = self.table_config(table).capacity_steps
        for chunk in chunks:
            if not isinstance(chunk, Chunk):
                raise ChunkError(f"add expects a Chunk, got {type(chunk).__name__}")
            if chunk.layout != chunks[0].layout:  # so a layout mismatch with the table refuses all or none
                raise ChunkError(f"add_many: chunk (episode {chunk.episode_id!r}) has step layout "
                                 f"{chunk.layout.key()}, the first chunk {chunks[0].layout.key()}")
            if chunk.length > capacity:
                raise ChunkError(f"chunk (episode {chunk.episode_id!r}, step {chunk.step_offset}) has "
                                 f"{chunk.length} steps, more than table {table!r} holds (capacity_steps = {capacity})")
        deadline = self._deadline(timeout)
        results: list[AddResult | None] = [None] * len(chunks)
        for attempt in itertools.count():
            pending = [i for i, result in enumerate(results) if result is None]
            for i, result in zip(pending, self._try_add(table, [chunks[i] for i in pending])):
                results[i] = result
            if all(result is not None for result in results):
                return results
            if not self._wait(table, deadline, attempt):
                steps = sum(chunks[i].length for i, r in enumerate(results) if r is None)
                raise RateLimited(f"table {table!r}: the rate limiter did not allow inserting {steps} steps "
                                  f"within {self._timeout(timeout)} s (samplers are behind the ratio)")

    def sample(self, table: str, batch_size: int, length: int, recency: float = 0.0,
               timeout: float | None = None) -> Batch:
        """B sequences of `length` consecutive steps of one episode each; counts B * length sampled steps
        towards the rate limiter, waiting for it up to `timeout` seconds."""
        return self._sample(table, batch_size, length, recency, True, timeout)

    def sample_contexts(self, table: str, batch_size: int, context: int, timeout: float | None = None) -> Batch:
        """(B, C) start contexts for imagination, drawn uniformly; they do not count towards the sample-to-insert
        ratio (that balances learners against actors) but do wait for min_size_to_sample."""
        return self._sample(table, batch_size, context, 0.0, False, timeout)

    def episode_steps(self, table: str, episode_id: str) -> int:
        """How many steps of the episode are stored now."""
        return sum(length for _, length in self.episode_chunks(table, episode_id))

    def _sample(self, table, batch_size, length, recency, counted, timeout) -> Batch:
        for name, value in (("batch_size", batch_size), ("length", length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} = {value!r} must be a positive integer")
        if not 0 <= recency < 1e6:
            raise ValueError(f"recency = {recency!r} must be >= 0 (0 = uniform)")
        if counted:  # also raises KeyError for an unknown table, before any waiting
            self.limiter(table).check_fits(insert_steps=1, sample_steps=batch_size * length)
        else:
            self.table_config(table)
        deadline = self._deadline(timeout)
        sequences: list[Sequence] = []
        layout = None
        waits = found_total = examined_total = empty = 0
        acceptance, check_after = 1.0, EMPTY_BEFORE_CHECK
        while len(sequences) < batch_size:
            want = batch_size - len(sequences)
            randoms = self._rng.random(min(MAX_CANDIDATES, int(CANDIDATES_PER_SEQUENCE * want / acceptance) + 8))
            result = self._try_sample(table, want, length, recency, counted, randoms)
            if result is None:
                waits += 1
                if not self._wait(table, deadline, waits):
                    raise RateLimited(f"table {table!r}: the rate limiter did not allow sampling {want} x {length} "
                                      f"steps within {self._timeout(timeout)} s (too few steps stored, or "
                                      "inserts are behind the ratio)")
                continue
            layout = result.layout or layout
            sequences += result.sequences
            self.candidates_drawn += result.examined
            found_total += len(result.sequences)
            examined_total += result.examined
            acceptance = min(1.0, max(found_total, 1) / max(examined_total, 1))
            empty = 0 if result.sequences else empty + result.examined
            if empty >= check_after:
                # Many draws and nothing: count exactly. No window at all is an error the user can act on;
                # rare windows just need larger rounds.
                stats = self._window_stats(table, length)
                if stats.windows == 0:
                    raise ReplayError(
                        f"table {table!r} holds no run of {length} consecutive stored steps of one episode: the "
                        f"longest is {stats.longest} steps ({stats.episodes} episodes, {stats.steps} steps in "
                        f"{stats.chunks} chunks); sample at most {stats.longest} steps, or store longer episodes")
                acceptance = min(acceptance, stats.windows / max(stats.steps, 1))
                empty, check_after = 0, 4 * check_after
        return assemble(sequences, layout, length)

    def _timeout(self, timeout: float | None) -> float:
        return self.cfg.block_timeout_s if timeout is None else timeout

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + self._timeout(timeout)
