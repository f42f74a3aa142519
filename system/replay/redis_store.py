"""Replay store on a Redis server: many writers and readers on many machines share tables and limiter counters.

In: `Chunk`s; out: `Batch`es (see store.py); the key layout and the server-side scripts are in redis_scripts.py.
- add: one MULTI/EXEC holds `SET staging <encoded chunk>` and the COMMIT script, which renames the staging key
  into the table (no copy) or drops it (duplicate, rate limited). A chunk is visible completely or not at all,
  also across a crash (a truncated transaction at the end of the AOF is discarded on load).
- sample: the SAMPLE script picks sequences and reports their byte ranges atomically; one MULTI/EXEC of GETRANGEs
  reads exactly those step records. Chunk keys are never reused, so a sequence whose chunk was evicted in
  between comes back empty and is dropped and redrawn; no half-evicted sequence is ever returned.
- Values are decoded only by chunk.py's codec (no object deserialisation); a foreign value is reported and
  skipped.
"""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from system.replay import redis_scripts
from system.replay.chunk import Chunk, ChunkError, ChunkFormatError, StepLayout, check_size, decode_chunk, \
    encode_chunk, payload_start
from system.replay.config import ReplayConfig
from system.replay.store import AddResult, ReplayError, ReplayStore, Sequence, TableStats

log = logging.getLogger(__name__)

STAGING_TTL_MS = 600_000  # a staged chunk whose commit never ran (a script error) disappears by itself
_PARAMS = ("capacity_steps", "samples_per_insert", "min_size_to_sample", "error_buffer")


def redact(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


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
    try:
        client.ping()
    except redis.AuthenticationError as error:
        raise ReplayError(f"Redis at {where} refused the credentials ({error}); set the password in "
                          f"${cfg.password_env}") from None
    except redis.ResponseError as error:
        if "NOAUTH" in str(error) or "WRONGPASS" in str(error):
            raise ReplayError(f"Redis at {where} requires a password ({error}); set ${cfg.password_env}") from None
        raise
    except redis.ConnectionError as error:
        raise ReplayError(f"cannot reach Redis at {where}: {error}") from None
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:
        policy = None  # managed servers often forbid CONFIG; the operator must set noeviction there
        log.warning("cannot read maxmemory-policy of Redis at %s; it must be noeviction", where)
    if policy not in (None, "noeviction"):
        raise ReplayError(f"Redis at {where} has maxmemory-policy {policy}: it could drop replay keys behind the "
                          "store's back; set maxmemory-policy noeviction (the store evicts FIFO itself)")
    return client


class RedisStore(ReplayStore):
    def __init__(self, cfg: ReplayConfig, client: redis.Redis, seed: int | None = None, owned_server=None):
        super().__init__(cfg, seed)
        self.client = client
        self.server = owned_server  # a LocalRedisServer this store started and stops on close()
        self.malformed_skipped = 0  # foreign or corrupt values met while sampling
        self._ready: set[str] = set()
        self._init_table = client.register_script(redis_scripts.INIT_TABLE)
        self._can_insert = client.register_script(redis_scripts.CAN_INSERT)
        self._commit = client.register_script(redis_scripts.COMMIT)
        self._pick = client.register_script(redis_scripts.SAMPLE)

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()
            self.server = None

    # Keys (see redis_scripts.py for the layout).
    def _base(self, table: str) -> str:
        return f"{self.cfg.key_prefix}:{{{table}}}"

    def _keys(self, table: str) -> tuple[str, str]:
        base = self._base(table)
        return f"{base}:info", f"{base}:index"

    def _ensure_table(self, table: str) -> None:
        """Stores the table's capacity and limiter settings on first use, or checks that they match."""
        if table in self._ready:
            return
        t = self.table_config(table)
        wanted = [t.capacity_steps, float(t.samples_per_insert), t.min_size_to_sample, float(t.error_buffer)]
        stored = self._init_table(keys=[self._keys(table)[0]], args=[repr(v) for v in wanted])
        for name, want, have in zip(_PARAMS, wanted, stored):
            if float(have) != float(want):
                raise ReplayError(f"table {table!r} in Redis (prefix {self.cfg.key_prefix!r}) was created with "
                                  f"{name} = {have.decode()}, this config says {want}: use the same settings, "
                                  "another replay.key_prefix, or delete the old table's keys")
        self._ready.add(table)

    def _try_add(self, table: str, chunks: list[Chunk]) -> list[AddResult | None]:
        self._ensure_table(table)
        info, index = self._keys(table)
        base = self._base(table)
        if self.table_config(table).samples_per_insert > 0:
            # Ask first, so a blocked writer does not ship (and log to the AOF) its chunks on every retry.
            if not self._can_insert(keys=[info], args=[min(c.length for c in chunks)]):
                return [None] * len(chunks)
        staged = []
        for chunk in chunks:
            check_size(chunk, self.cfg.max_chunk_bytes)
            blob = encode_chunk(chunk)
            staging = f"{base}:staging:{uuid.uuid4().hex}"
            keys = [info, index, f"{base}:ep:{chunk.episode_id}", staging]
            args = [base, chunk.episode_id, int(chunk.step_offset), chunk.length, payload_start(blob),
                    int(chunk.task_id), chunk.layout.key()]
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
            raise ReplayError(f"committing chunk (episode {chunk.episode_id!r}, step {chunk.step_offset}) "
                              f"failed: {reply}")
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
        self._ensure_table(table)
        info, index = self._keys(table)
        base = self._base(table)
        reply = self._pick(keys=[info, index], args=[base, length, repr(float(recency)), int(counted), want,
                                                      *map(repr, randoms.tolist())])
        if reply[0] in (b"limited", b"uninitialised"):
            self._ready.discard(table)
            return None
        layout = StepLayout.from_key(reply[1].decode("ascii", errors="replace"))
        plans = _parse_plans(reply[2:])
        if not plans:
            return [], layout
        record = layout.record_size
        pipe = self.client.pipeline(transaction=True)
        for _, _, _, pieces in plans:
            for seq, first, end, start, _ in pieces:
                pipe.strlen(f"{base}:chunk:{seq}")
                pipe.getrange(f"{base}:chunk:{seq}", start + first * record, start + end * record - 1)
        replies = iter(pipe.execute())
        found, dropped = [], 0
        for episode_id, step, task_id, pieces in plans:
            records = []
            for seq, first, end, start, chunk_length in pieces:
                size, value = next(replies), next(replies)
                if size == start + chunk_length * record and len(value) == (end - first) * record:
                    records.append(np.frombuffer(value, dtype=layout.record_dtype))
                elif size:  # a value of the wrong size at a chunk key: not ours, or corrupt (0: evicted)
                    self.malformed_skipped += 1
                    log.warning("skipping a sequence: %s holds %d bytes, the index says %d", f"{base}:chunk:{seq}",
                                size, start + chunk_length * record)
            if len(records) == len(pieces):
                found.append(Sequence(episode_id, step, task_id, records))
            else:
                dropped += 1  # evicted between picking and reading (or malformed): drawn again
        if counted and dropped:
            self.client.hincrby(info, "sampled_steps", -dropped * length)
        return found, layout

    def _wait(self, table: str, deadline: float, attempt: int = 0) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(0.001 * 2 ** min(attempt, 6), 0.05, remaining))  # back off to 50 ms between polls
        return True

    def get_chunk(self, table: str, episode_id: str, step_offset: int) -> Chunk:
        base = self._base(table)
        seq = self.client.hget(f"{base}:ep:{episode_id}", int(step_offset))
        value = self.client.get(f"{base}:chunk:{int(seq)}") if seq is not None else None
        if value is None:
            raise KeyError(f"table {table!r} stores no chunk of episode {episode_id!r} at step {step_offset}")
        key = f"{base}:chunk:{int(seq)}"
        chunk = decode_chunk(value, where=key)
        if (chunk.episode_id, chunk.step_offset) != (episode_id, int(step_offset)):
            raise ChunkFormatError(f"{key}: holds episode {chunk.episode_id!r} step {chunk.step_offset}, the index "
                                   f"says episode {episode_id!r} step {step_offset}")
        return chunk

    def episode_chunks(self, table: str, episode_id: str) -> list[tuple[int, int]]:
        base = self._base(table)
        seqs = self.client.hgetall(f"{base}:ep:{episode_id}")
        if not seqs:
            return []
        entries = self.client.hmget(f"{base}:index", list(seqs.values()))
        out = []
        for entry in entries:
            if entry is None:
                continue  # evicted between the two reads
            offset, length, *_ = _parse_entry(entry, f"{base}:index")
            out.append((offset, length))
        return sorted(out)

    def stats(self, table: str) -> TableStats:
        self._ensure_table(table)
        names = ["head", "tail", "steps", "inserted_steps", "sampled_steps", "evicted_chunks", "evicted_steps"]
        v = {n: int(x or 0) for n, x in zip(names, self.client.hmget(self._keys(table)[0], names))}
        return TableStats(chunks=v["tail"] - v["head"], steps=v["steps"],
                          capacity_steps=self.table_config(table).capacity_steps,
                          inserted_steps=v["inserted_steps"], sampled_steps=v["sampled_steps"],
                          evicted_chunks=v["evicted_chunks"], evicted_steps=v["evicted_steps"])


def _parse_entry(entry: bytes, where: str) -> tuple[int, int, int, int, str]:
    try:
        offset, length, start, task, episode = entry.decode("ascii").split(" ", 4)
        return int(offset), int(length), int(start), int(task), episode
    except (UnicodeDecodeError, ValueError):
        raise ChunkFormatError(f"{where}: malformed index entry {entry[:80]!r}") from None


def _parse_plans(flat: list) -> list[tuple[str, int, int, list[tuple[int, int, int, int, int]]]]:
    """Unflattens the SAMPLE script's reply into (episode_id, start, task_id, pieces) per sequence."""
    plans, i = [], 0
    while i < len(flat):
        episode_id = flat[i].decode("ascii")
        start, task_id, count = int(flat[i + 1]), int(flat[i + 2]), int(flat[i + 3])
        i += 4
        pieces = [tuple(int(x) for x in flat[i + 5 * k:i + 5 * k + 5]) for k in range(count)]
        i += 5 * count
        plans.append((episode_id, start, task_id, pieces))
    return plans
