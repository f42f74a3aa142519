"""The `imagined` table: encoded imagined trajectories in Redis, rate-limited against the agent learner.

    table = TrajectoryTable(client, cfg)                    # cfg: a ReplayConfig; settings from cfg.tables.imagined
    seq = table.insert(encode_trajectory(traj), steps=B * H)   # waits while the learner is behind the ratio
    seq, data = table.sample()                              # a uniform pick; waits while too few are stored
    data = table.get(seq);  table.stats()                   # {"size", "inserted", "sampled", "trajectories"}

Imagination workers insert, the agent learner samples. The limiter is the replay tables' (limiter.py, counted
in imagined steps, B x H per trajectory): with samples_per_insert = 1 every imagined step is trained on about
once, and workers wait rather than run ahead of the learner by more than error_buffer steps. Each insert and
sample is one Lua script, so every client sees one set of counters. FIFO eviction keeps at most capacity_steps.
Values are the trajectory bytes of system/imagination/trajectory.py, decoded by the caller; nothing is unpickled.
"""

from __future__ import annotations

import random
import time

import redis

from system.replay.config import ReplayConfig
from system.replay.limiter import RateLimited, RateLimiter
from system.replay.store import ReplayError

# KEYS: info hash, data hash (seq -> bytes), steps hash (seq -> steps)
# ARGV: steps, spi, min_size, error_buffer, capacity, data
_INSERT = """
local c = redis.call('HMGET', KEYS[1], 'inserted', 'sampled', 'size', 'head', 'tail')
local inserted, sampled = tonumber(c[1]) or 0, tonumber(c[2]) or 0
local size, head, tail = tonumber(c[3]) or 0, tonumber(c[4]) or 0, tonumber(c[5]) or 0
local n, spi, min_size = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local error_buffer, capacity = tonumber(ARGV[4]), tonumber(ARGV[5])
if not (spi == 0 or size + n <= min_size or (inserted + n) * spi - sampled <= spi * min_size + error_buffer) then
  return -1
end
while size + n > capacity and head < tail do
  size = size - tonumber(redis.call('HGET', KEYS[3], head))
  redis.call('HDEL', KEYS[2], head)
  redis.call('HDEL', KEYS[3], head)
  head = head + 1
end
redis.call('HSET', KEYS[2], tail, ARGV[6])
redis.call('HSET', KEYS[3], tail, n)
redis.call('HSET', KEYS[1], 'inserted', inserted + n, 'size', size + n, 'head', head, 'tail', tail + 1)
return tail
"""

# ARGV: u in [0, 1), spi, min_size, error_buffer -> {seq, data} or {-1} (limited)
_SAMPLE = """
local c = redis.call('HMGET', KEYS[1], 'inserted', 'sampled', 'size', 'head', 'tail')
local inserted, sampled = tonumber(c[1]) or 0, tonumber(c[2]) or 0
local size, head, tail = tonumber(c[3]) or 0, tonumber(c[4]) or 0, tonumber(c[5]) or 0
local spi, min_size, error_buffer = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if size < min_size or head >= tail then return {-1} end
local seq = head + math.floor(tonumber(ARGV[1]) * (tail - head))
if seq >= tail then seq = tail - 1 end
local m = tonumber(redis.call('HGET', KEYS[3], seq))
if spi ~= 0 and inserted * spi - (sampled + m) < spi * min_size - error_buffer then return {-1} end
redis.call('HSET', KEYS[1], 'sampled', sampled + m)
return {seq, redis.call('HGET', KEYS[2], seq)}
"""


class TrajectoryTable:
    def __init__(self, client: redis.Redis, cfg: ReplayConfig, table: str = "imagined", seed: int | None = None):
        self.client, self.cfg, self.table = client, cfg, table
        self.settings = cfg.tables.get(table)
        base = f"{cfg.key_prefix}:{{{table}}}:traj"  # one hash slot per table, as the step tables
        self.keys = [f"{base}:info", f"{base}:data", f"{base}:steps"]
        self.random = random.Random(seed)
        self._insert = client.register_script(_INSERT)
        self._sample = client.register_script(_SAMPLE)

    def _limits(self) -> list:
        s = self.settings
        return [s.samples_per_insert, s.min_size_to_sample, s.error_buffer]

    def check_fits(self, steps: int) -> None:
        """Raises ValueError when inserts and samples of `steps`-step trajectories could block each other forever."""
        s = self.settings
        RateLimiter(s.samples_per_insert, s.min_size_to_sample, s.error_buffer).check_fits(steps, steps)

    def insert(self, data: bytes, steps: int, timeout: float | None = None) -> int:
        """Stores one encoded trajectory of `steps` imagined steps; returns its sequence number."""
        if steps < 1 or steps > self.settings.capacity_steps:
            raise ValueError(f"trajectory of {steps} steps does not fit table {self.table!r} "
                             f"(capacity_steps {self.settings.capacity_steps})")
        spi, min_size, error_buffer = self._limits()
        args = [steps, spi, min_size, error_buffer, self.settings.capacity_steps, data]
        return self._wait("insert", lambda: self._to_seq(self._insert(keys=self.keys, args=args)), timeout)

    def sample(self, timeout: float | None = None) -> tuple[int, bytes]:
        """A uniformly drawn stored trajectory (seq, bytes), counted against the ratio."""
        def attempt():
            reply = self._sample(keys=self.keys, args=[self.random.random(), *self._limits()])
            return None if int(reply[0]) < 0 else (int(reply[0]), bytes(reply[1]))
        return self._wait("sample", attempt, timeout)

    def get(self, seq: int) -> bytes:
        data = self.client.hget(self.keys[1], seq)
        if data is None:
            raise KeyError(f"table {self.table!r}: no trajectory with seq {seq} (evicted or never inserted)")
        return bytes(data)

    def stats(self) -> dict[str, int]:
        info = self.client.hgetall(self.keys[0])
        value = {k.decode(): int(v) for k, v in info.items()}
        return {"size": value.get("size", 0), "inserted": value.get("inserted", 0),
                "sampled": value.get("sampled", 0), "trajectories": value.get("tail", 0) - value.get("head", 0)}

    @staticmethod
    def _to_seq(reply) -> int | None:
        return None if int(reply) < 0 else int(reply)

    def _wait(self, doing: str, attempt, timeout: float | None):
        deadline = time.monotonic() + (self.cfg.block_timeout_s if timeout is None else timeout)
        pause = 0.002
        while True:
            result = attempt()
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                raise RateLimited(f"table {self.table!r}: {doing} not allowed by the rate limiter before the "
                                  f"timeout ({self.stats()}, samples_per_insert {self.settings.samples_per_insert}, "
                                  f"min_size_to_sample {self.settings.min_size_to_sample})")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def trajectory_table(store, table: str = "imagined", seed: int | None = None) -> TrajectoryTable:
    """The trajectory table on the server of a Redis replay store (the embedded store lives in one process, so
    workers in other processes could not reach it)."""
    client = getattr(store, "client", None)
    if not isinstance(client, redis.Redis):
        raise ReplayError(f"table {table!r} of imagined trajectories needs a single-server Redis replay store, "
                         f"got {type(store).__name__} (replay.backend=redis, or auto with redis-server installed)")
    return TrajectoryTable(client, store.cfg, table, seed)
