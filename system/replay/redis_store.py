"""Replay store on a Redis server: many writers and readers on many machines share tables and limiter counters.

In: `Chunk`s; out: `Batch`es (see store.py); the key layout and the server-side scripts are in redis_scripts.py.
- add: one MULTI/EXEC holds `SET staging <encoded chunk>` and the COMMIT script, which renames the staging key
  into the table (no copy) or drops it (duplicate, rate limited). A chunk is visible completely or not at all,
  also across a crash (a truncated transaction at the end of the AOF is discarded on load).
- sample: the SAMPLE script picks sequences and reports their byte ranges atomically; one MULTI/EXEC of GETRANGEs
  reads exactly those step records. Chunk keys are never reused, so a sequence whose chunk was evicted in
  between comes back empty and is dropped and redrawn; no half-evicted sequence is ever returned.
- Values are decoded only by chunk.py's codec (no object deserialisation); a foreign value, or bytes of the right
  length that are not steps of the table's layout (StepLayout.bad_records), are reported and skipped.
- Every Redis failure becomes a ReplayError naming the server and what to do (redis_errors.py); an add whose
  reply was lost is a NotAcknowledged, and adding it again is safe.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from functools import lru_cache

import numpy as np
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from system.replay import redis_scripts
from system.replay.chunk import Chunk, ChunkError, ChunkFormatError, StepLayout, check_size, decode_chunk, \
    encode_chunk, payload_start
from system.replay.config import ReplayConfig
from system.replay.redis_errors import describe, redact, redis_errors, translate
from system.replay.store import AddResult, ReplayError, ReplayStore, Round, Sequence, TableStats, WindowStats, \
    window_stats

log = logging.getLogger(__name__)

STAGING_TTL_MS = 600_000  # a staged chunk whose commit never ran (a script error) disappears by itself
_PARAMS = ("capacity_steps", "samples_per_insert", "min_size_to_sample", "error_buffer")
_COUNTERS = ("head", "tail", "steps", "inserted_steps", "sampled_steps", "evicted_chunks", "evicted_steps")


def connect(url: str, password: str | None, cfg: ReplayConfig) -> redis.Redis:
    """A checked client: reachable, authenticated, and with a server that does not evict keys by itself."""
    if cfg.tls and url.startswith("redis://"):
        url = "rediss://" + url[len("redis://"):]
    # redis-py 8 retries 10 times by default: with a frozen server that is minutes per call. Retry a little
    # (a dropped connection, a restart), then report.
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), cfg.retries)
    kwargs = {"socket_timeout": cfg.socket_timeout_s, "socket_connect_timeout": cfg.socket_timeout_s,
              "retry": retry}
    if password:
        kwargs["password"] = password
    if url.startswith("rediss://") and cfg.tls_ca_file:
        kwargs["ssl_ca_certs"] = cfg.tls_ca_file
    client = redis.Redis.from_url(url, **kwargs)
    where = redact(url)
    with redis_errors(where, cfg, "connecting", connecting=True):
        client.ping()
        try:
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.ResponseError as error:
            if str(error).startswith(("NOAUTH", "WRONGPASS")):
                raise
            policy = None  # managed servers often forbid CONFIG; the operator must set noeviction there
            log.warning("cannot read maxmemory-policy of Redis at %s; it must be noeviction", where)
    if policy not in (None, "noeviction"):
        raise ReplayError(f"Redis at {where} has maxmemory-policy {policy}: it could drop replay keys behind the "
                          "store's back; set maxmemory-policy noeviction (the store evicts FIFO itself)")
    return client


class RedisStore(ReplayStore):
    """One table per key prefix on one server; `shard=(k, n)` makes it shard k of n of each table (sharded_store.py):
    it then holds its share of capacity_steps and min_size_to_sample, and refuses a server that holds another
    shard."""

    def __init__(self, cfg: ReplayConfig, client: redis.Redis, seed: int | None = None, owned_server=None,
                 shard: tuple[int, int] = (0, 1)):
        super().__init__(cfg, seed)
        self.client = client
        self.server = owned_server  # a LocalRedisServer this store started and stops on close()
        self.where = describe(client)  # for messages: the address, never the password
        self.shard = shard
        self.malformed_skipped = 0  # foreign or corrupt values met while sampling
        self.stored_steps: dict[str, int] = {}  # per table, as the last sample saw it
        self._ready: set[str] = set()
        self._init_table = client.register_script(redis_scripts.INIT_TABLE)
        self._can_insert = client.register_script(redis_scripts.CAN_INSERT)
        self._commit = client.register_script(redis_scripts.COMMIT)
        self._pick = client.register_script(redis_scripts.SAMPLE)
        self._count = client.register_script(redis_scripts.COUNT_SAMPLED)

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _errors(self, doing: str, unacknowledged: bool = False):
        return redis_errors(self.where, self.cfg, doing, unacknowledged)

    def table_config(self, table: str):
        """This shard's share of the table (all of it when unsharded)."""
        t = super().table_config(table)
        k, n = self.shard
        if n == 1:
            return t
        return dataclasses.replace(t, capacity_steps=t.capacity_steps // n + (k < t.capacity_steps % n),
                                   min_size_to_sample=-(-t.min_size_to_sample // n))

    # Keys (see redis_scripts.py for the layout).
    def _base(self, table: str) -> str:
        return f"{self.cfg.key_prefix}:{{{table}}}"

    def _keys(self, table: str) -> tuple[str, str, str]:
        base = self._base(table)
        return f"{base}:info", f"{base}:index", f"{base}:pos"

    def check_table(self, table: str) -> None:
        with self._errors(f"checking table {table!r}"):
            self._ensure_table(table)

    def table_layout(self, table: str) -> StepLayout | None:
        with self._errors(f"reading table {table!r}"):
            self._ensure_table(table)
            key = self.client.hget(self._keys(table)[0], "layout")
        return _layout(key) if key else None

    def _ensure_table(self, table: str) -> None:
        """Stores the table's capacity and limiter settings on first use, or checks that they match."""
        if table in self._ready:
            return
        t = self.table_config(table)
        wanted = [t.capacity_steps, float(t.samples_per_insert), t.min_size_to_sample, float(t.error_buffer)]
        shard = f"{self.shard[0]}/{self.shard[1]}"
        info = self._keys(table)[0]
        *stored, stored_shard = self._init_table(keys=list(self._keys(table)), args=[repr(v) for v in wanted] + [shard])
        where = f"table {table!r} on Redis at {self.where} (prefix {self.cfg.key_prefix!r})"
        if stored_shard.decode(errors="replace") != shard:
            k, n = (stored_shard.decode(errors="replace").split("/") + ["?"])[:2]
            raise ReplayError(f"{where} holds shard {k} of {n} servers, this client takes it for shard "
                              f"{self.shard[0]} of {self.shard[1]}: list the same servers in the same order in "
                              "replay.url as the run that created the table (or use another replay.key_prefix)")
        for name, want, have in zip(_PARAMS, wanted, stored):
            try:
                value = float(have)
            except ValueError:
                raise ReplayError(f"{info}: field {name!r} = {have[:40]!r} is not a number: something other than "
                                  "the replay store wrote it; delete the table's keys or use another "
                                  "replay.key_prefix") from None
            if value != float(want):
                fix = (f"set replay.tables.{table}.{name} = {have.decode()} to use it" if self.shard[1] == 1 else
                       f"it was created with another replay.tables.{table}.{name} or another number of servers "
                       "in replay.url; use those")
                raise ReplayError(f"{where} was created with {name} = {have.decode()}, this config says {want}: "
                                  f"{fix}, or start a new table with another replay.key_prefix (or delete the old "
                                  "table's keys)")
        self._ready.add(table)

    def _try_add(self, table: str, chunks: list[Chunk]) -> list[AddResult | None]:
        for chunk in chunks:
            check_size(chunk, self.cfg.max_chunk_bytes)
        with self._errors(f"checking table {table!r}"):
            self._ensure_table(table)
        doing = f"adding {len(chunks)} chunk{'s' * (len(chunks) > 1)} to table {table!r}"
        with self._errors(doing, unacknowledged=True):
            return self._send_adds(table, chunks)

    def _send_adds(self, table: str, chunks: list[Chunk]) -> list[AddResult | None]:
        info, index, pos = self._keys(table)
        base = self._base(table)
        if self.table_config(table).samples_per_insert > 0:
            # Ask first, so a blocked writer does not ship (and log to the AOF) its chunks on every retry.
            if not self._can_insert(keys=[info], args=[min(c.length for c in chunks)]):
                return [None] * len(chunks)
        staged = []
        for chunk in chunks:
            blob = encode_chunk(chunk)
            staging = f"{base}:staging:{uuid.uuid4().hex}"
            keys = [info, index, f"{base}:ep:{chunk.episode_id}", staging, pos]
            args = [base, chunk.episode_id, int(chunk.step_offset), chunk.length, payload_start(blob),
                    int(chunk.task_id), chunk.layout.key(), chunk.layout.shape_key()]
            staged.append((staging, blob, keys, args))
        for attempt in range(2):
            # One pipeline of per-chunk MULTI/EXEC blocks: each chunk is atomic on its own, and Redis works on
            # one block while the next is still arriving (one big transaction would serialise the two).
            # EVALSHA directly: a redis-py Script in a pipeline costs an extra SCRIPT EXISTS round trip.
            pipe = self.client.pipeline(transaction=False)
            for staging, blob, keys, args in staged:
                pipe.execute_command("MULTI")
                pipe.execute_command("SET", staging, blob, "PX", STAGING_TTL_MS)
                pipe.execute_command("EVALSHA", self._commit.sha, len(keys), *keys, *args)
                pipe.execute_command("EXEC")
            replies = [r if isinstance(r, Exception) else r[1] for r in pipe.execute(raise_on_error=False)[3::4]]
            if not any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                break
            # The server forgot the script (restart, SCRIPT FLUSH): load it and redo the whole batch; the
            # staged values are overwritten under the same names, committed chunks report as duplicates.
            self._commit.sha = self.client.script_load(redis_scripts.COMMIT)
        return [self._add_result(table, chunk, reply) for chunk, reply in zip(chunks, replies)]

    def _add_result(self, table: str, chunk: Chunk, reply) -> AddResult | None:
        if isinstance(reply, Exception):
            doing = f"committing chunk (episode {chunk.episode_id!r}, step {chunk.step_offset}) to table {table!r}"
            raise (translate(reply, self.where, self.cfg, doing) if isinstance(reply, redis.RedisError) else
                   ReplayError(f"{doing} failed: {reply}"))
        status, *rest = reply
        if status == b"inserted":
            return AddResult(inserted=True, seq=int(rest[0]), evicted_chunks=int(rest[1]))
        if status == b"duplicate":
            return AddResult(inserted=False, seq=int(rest[0]))
        if status in (b"limited", b"uninitialised"):
            self._ready.discard(table)  # after "uninitialised" the retry stores the table's settings again
            return None
        if status == b"layout":
            raise ChunkError(f"chunk (episode {chunk.episode_id!r}) has step layout {chunk.layout.key()}, "
                             f"table {table!r} holds {rest[0].decode(errors='replace')}")
        raise ReplayError(f"unexpected reply {status!r} from the commit script")

    def _try_sample(self, table, want, length, recency, counted, randoms):
        with self._errors(f"sampling table {table!r}"):
            self._ensure_table(table)
            picked = self.pick(table, want, length, recency, counted, randoms)
            if picked is None:
                return None
            layout, examined, plans = picked
            found = self.read(table, layout, [plan[1:] for plan in plans], length, counted, count_now=False)
            return Round(found, layout, examined)

    # The two halves of a sample, public to the sharded store (which picks on every shard, then reads).
    def pick(self, table, want, length, recency, counted, randoms):
        """Runs SAMPLE: (layout, candidates examined, [(candidate, episode_id, start, task_id, pieces)]), or
        None when the limiter says not now. `counted` counts the steps of what it picks, atomically."""
        info, index, pos = self._keys(table)
        reply = self._pick(keys=[info, index, pos], args=[self._base(table), length, repr(float(recency)),
                                                          int(counted), want, *map(repr, randoms.tolist())])
        if reply[0] in (b"limited", b"uninitialised"):
            self._ready.discard(table)
            return None
        self.stored_steps[table] = int(reply[2])
        examined, malformed_entries = int(reply[3]), int(reply[4])
        if malformed_entries:
            self.malformed_skipped += malformed_entries
            log.warning("skipped %d candidates whose entry in %s is malformed", malformed_entries, index)
        return (_layout(reply[1]) if reply[1] else None), examined, _parse_plans(reply[5:])

    def read(self, table, layout, plans, length, counted, count_now) -> list[Sequence] | None:
        """Reads the picked sequences' step records in one MULTI/EXEC; sequences evicted meanwhile or holding
        foreign bytes are dropped (and their counted steps refunded). count_now: the pick did not count, so
        the transaction checks the limiter and counts first (None: limited, nothing returned)."""
        if not plans:
            return []
        info = self._keys(table)[0]
        base = self._base(table)
        record = layout.record_size
        pipe = self.client.pipeline(transaction=True)
        if count_now:
            pipe.execute_command("EVALSHA", self._count.sha, 1, info, len(plans) * length, int(counted))
        for _, _, _, pieces in plans:
            for seq, first, end, start, _ in pieces:
                pipe.strlen(f"{base}:chunk:{seq}")
                pipe.getrange(f"{base}:chunk:{seq}", start + first * record, start + end * record - 1)
        replies = iter(pipe.execute(raise_on_error=False))
        if count_now:
            allowed = next(replies)
            if isinstance(allowed, redis.exceptions.NoScriptError):
                self._count.sha = self.client.script_load(redis_scripts.COUNT_SAMPLED)  # read again next round
                return None
            if isinstance(allowed, Exception):
                raise allowed
            if not allowed:
                return None
        found, dropped = [], 0
        for episode_id, step, task_id, pieces in plans:
            records = []
            for seq, first, end, start, chunk_length in pieces:
                key = f"{base}:chunk:{seq}"
                size, value = next(replies), next(replies)
                if isinstance(size, Exception) or isinstance(value, Exception):  # e.g. WRONGTYPE: not ours
                    self._skip(key, f"cannot be read as a chunk ({size if isinstance(size, Exception) else value})")
                elif size == start + chunk_length * record and len(value) == (end - first) * record:
                    piece = np.frombuffer(value, dtype=layout.record_dtype)
                    reason = layout.bad_records(piece)
                    if reason is None:
                        records.append(piece)
                    else:  # bytes of exactly the right length that are not steps: foreign, or corrupted
                        self._skip(key, f"holds bytes that are not steps of layout {layout.key()} (in its "
                                        f"steps {first}..{end - 1}, {reason})")
                elif size:  # a value of the wrong size at a chunk key: not ours, or corrupt (0: evicted)
                    self._skip(key, f"holds {size} bytes, the index says {start + chunk_length * record}")
            if len(records) == len(pieces):
                found.append(Sequence(episode_id, step, task_id, records))
            else:
                dropped += 1  # evicted between picking and reading (or malformed): drawn again
        if counted and dropped:
            self.client.hincrby(info, "sampled_steps", -dropped * length)
        return found

    def _skip(self, key: str, reason: str) -> None:
        self.malformed_skipped += 1
        log.warning("skipping a sequence: %s %s", key, reason)

    def _window_stats(self, table: str, length: int) -> WindowStats:
        # Walks the index incrementally (HSCAN), so even a large table never blocks the server for long.
        index = self._keys(table)[1]
        chunks = []
        with self._errors(f"counting the windows of table {table!r}"):
            for _, entry in self.client.hscan_iter(index, count=1000):
                try:
                    offset, steps, _, _, episode = _parse_entry(entry, index)
                except ReplayError:
                    continue
                chunks.append((episode, offset, steps))
        return window_stats(chunks, length)

    def _wait(self, table: str, deadline: float, attempt: int = 0) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(0.001 * 2 ** min(attempt, 6), 0.05, remaining))  # back off to 50 ms between polls
        return True

    def get_chunk(self, table: str, episode_id: str, step_offset: int) -> Chunk:
        base = self._base(table)
        key = None
        with self._errors(f"reading a chunk of episode {episode_id!r} from table {table!r}"):
            seq = self.client.hget(f"{base}:ep:{episode_id}", int(step_offset))
            if seq is not None:
                key = f"{base}:chunk:{_int(seq, f'{base}:ep:{episode_id}')}"
                try:
                    value = self.client.get(key)
                except redis.ResponseError as error:  # another type at a chunk key: not ours
                    raise ChunkFormatError(f"{key}: {error}") from None
        if key is None or value is None:
            raise KeyError(f"table {table!r} stores no chunk of episode {episode_id!r} at step {step_offset}")
        chunk = decode_chunk(value, where=key)
        if (chunk.episode_id, chunk.step_offset) != (episode_id, int(step_offset)):
            raise ChunkFormatError(f"{key}: holds episode {chunk.episode_id!r} step {chunk.step_offset}, the index "
                                   f"says episode {episode_id!r} step {step_offset}")
        return chunk

    def episode_chunks(self, table: str, episode_id: str) -> list[tuple[int, int]]:
        base = self._base(table)
        with self._errors(f"listing the chunks of episode {episode_id!r} in table {table!r}"):
            seqs = self.client.hgetall(f"{base}:ep:{episode_id}")
            entries = self.client.hmget(f"{base}:index", list(seqs.values())) if seqs else []
        out = []
        for entry in entries:
            if entry is None:
                continue  # evicted between the two reads (or a stale entry of an unreadable evicted chunk)
            offset, length, *_ = _parse_entry(entry, f"{base}:index")
            out.append((offset, length))
        return sorted(out)

    def stats(self, table: str) -> TableStats:
        info = self._keys(table)[0]
        with self._errors(f"reading the counters of table {table!r}"):
            self._ensure_table(table)
            values = self.client.hmget(info, list(_COUNTERS))
        v = {name: _int(x, info, name) for name, x in zip(_COUNTERS, values)}
        return TableStats(chunks=v["tail"] - v["head"], steps=v["steps"],
                          capacity_steps=self.table_config(table).capacity_steps,
                          inserted_steps=v["inserted_steps"], sampled_steps=v["sampled_steps"],
                          evicted_chunks=v["evicted_chunks"], evicted_steps=v["evicted_steps"])


def _int(value: bytes | None, key: str, field: str | None = None) -> int:
    """An integer read from Redis (None: 0); a ReplayError naming the key (and field) for anything else."""
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        name = f"field {field!r}" if field else "value"
        raise ReplayError(f"{key}: {name} = {value[:40].decode(errors='replace')!r} is not a number: something "
                          "other than the replay store wrote it; delete the table's keys or use another "
                          "replay.key_prefix") from None


@lru_cache(maxsize=64)
def _layout(key: bytes) -> StepLayout:
    return StepLayout.from_key(key.decode("ascii", errors="replace"))


def _parse_entry(entry: bytes, where: str) -> tuple[int, int, int, int, str]:
    try:
        offset, length, start, task, episode = entry.decode("ascii").split(" ", 4)
        return int(offset), int(length), int(start), int(task), episode
    except (UnicodeDecodeError, ValueError):
        raise ReplayError(f"{where}: malformed index entry {entry[:80]!r} (written by something other than the "
                          "replay store, or corrupted)") from None


def _parse_plans(flat: list) -> list[tuple[int, str, int, int, list[tuple[int, int, int, int, int]]]]:
    """Unflattens the SAMPLE script's reply into (candidate, episode_id, start, task_id, pieces) per sequence."""
    plans, i = [], 0
    while i < len(flat):
        candidate, episode_id = int(flat[i]), flat[i + 1].decode("ascii")
        start, task_id, count = int(flat[i + 2]), int(flat[i + 3]), int(flat[i + 4])
        i += 5
        pieces = [tuple(int(x) for x in flat[i + 5 * k:i + 5 * k + 5]) for k in range(count)]
        i += 5 * count
        plans.append((candidate, episode_id, start, task_id, pieces))
    return plans
