"""Replay store configuration: backend, connection, durability, and one section per table.

Secrets never live in config files: the password is read from the environment variable named by
`password_env` (REDIS_PASSWORD by default) or from the URL, and the URL itself may come from `url_env`.
Values that cannot work (a capacity of 0, a negative timeout) are refused when the config is built, so a run
fails on load, naming the key, rather than minutes in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal


def _require(ok: bool, name: str, value, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name} = {value!r} {rule}")


@dataclass
class TableConfig:
    capacity_steps: int = 100_000  # FIFO eviction keeps at most this many steps (64x64x3 frames: ~1.2 GB)
    samples_per_insert: float = 0.0  # rate limiter ratio in steps (Dreamer's train ratio); 0 = off
    min_size_to_sample: int = 1  # steps stored before sampling may start
    error_buffer: float = 100_000.0  # allowed drift from the ratio, in sampled steps (see limiter.py)

    def __post_init__(self) -> None:
        _require(self.capacity_steps >= 1, "capacity_steps", self.capacity_steps, "must be a positive number of steps")
        _require(self.samples_per_insert >= 0, "samples_per_insert", self.samples_per_insert, "must be >= 0 (0 = off)")
        _require(self.min_size_to_sample >= 1, "min_size_to_sample", self.min_size_to_sample, "must be >= 1")
        _require(self.error_buffer >= 0, "error_buffer", self.error_buffer, "must be >= 0")


@dataclass
class TablesConfig:
    """The tables of the design: environment/dataset episodes, imagined rollouts, and held-out dataset episodes
    (data.ingest.held_out_every: evaluation clips for runs that train from an ingested dataset)."""

    real: TableConfig = field(default_factory=TableConfig)
    imagined: TableConfig = field(default_factory=lambda: TableConfig(capacity_steps=20_000))
    held_out: TableConfig = field(default_factory=lambda: TableConfig(capacity_steps=20_000))

    def names(self) -> list[str]:
        return [f.name for f in fields(self)]

    def get(self, name: str) -> TableConfig:
        if name not in self.names():
            raise KeyError(f"unknown replay table {name!r}; configured tables: {self.names()}")
        return getattr(self, name)


@dataclass
class ReplayConfig:
    # auto: Redis when a URL is configured (it must answer), else a local redis-server in the run directory
    # when the binary is installed, else the embedded in-process store.
    backend: Literal["auto", "redis", "embedded"] = "auto"
    # e.g. redis://host:6379/0 or rediss:// for TLS; several comma-separated URLs shard every table over those
    # servers (sharded_store.py: every client must list the same servers in the same order). Empty: the
    # variable named by url_env.
    url: str = ""
    url_env: str = "REDIS_URL"
    password_env: str = "REDIS_PASSWORD"  # environment variable holding the password (never put it in YAML)
    tls: bool = False  # force TLS even for a redis:// URL
    tls_ca_file: str = ""  # CA bundle to verify the server certificate; empty: the system's
    key_prefix: str = "d4"  # namespace of this run's keys, so runs can share one Redis
    local_servers: int = 1  # without a URL: this many local redis-servers (<run_dir>/redis, redis-1, ...), sharded
    aof: bool = True  # local server keeps an append-only file in the run directory (False: memory only)
    appendfsync: Literal["always", "everysec", "no"] = "everysec"  # local server's AOF fsync policy
    max_chunk_bytes: int = 64 * 1024 * 1024  # larger chunks are refused (Redis' own limit is 512 MB)
    block_timeout_s: float = 600.0  # how long add/sample wait for the rate limiter before RateLimited
    # Per socket operation (connect, send, receive): a frozen or unreachable server is reported after this
    # long (times 1 + retries), as a ReplayError, instead of blocking the run.
    socket_timeout_s: float = 5.0
    retries: int = 1  # reconnect-and-resend attempts after a dropped connection or timeout (adds are idempotent)
    tables: TablesConfig = field(default_factory=TablesConfig)

    def __post_init__(self) -> None:
        _require(self.socket_timeout_s > 0, "socket_timeout_s", self.socket_timeout_s, "must be > 0 seconds")
        _require(self.retries >= 0, "retries", self.retries, "must be >= 0")
        _require(self.max_chunk_bytes >= 1, "max_chunk_bytes", self.max_chunk_bytes, "must be >= 1")
        _require(self.block_timeout_s >= 0, "block_timeout_s", self.block_timeout_s, "must be >= 0 seconds")
        _require(self.local_servers >= 1, "local_servers", self.local_servers, "must be >= 1")
        _require(bool(self.key_prefix) and not set("{} ") & set(self.key_prefix), "key_prefix", self.key_prefix,
                 "must be non-empty, without braces or spaces (braces would change the keys' hash slots)")
