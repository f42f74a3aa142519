"""Replay store configuration: backend, connection, durability, and one section per table.

Secrets never live in config files: the password is read from the environment variable named by
`password_env` (REDIS_PASSWORD by default) or from the URL, and the URL itself may come from `url_env`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal


@dataclass
class TableConfig:
    capacity_steps: int = 100_000  # FIFO eviction keeps at most this many steps (64x64x3 frames: ~1.2 GB)
    samples_per_insert: float = 0.0  # rate limiter ratio in steps (Dreamer's train ratio); 0 = off
    min_size_to_sample: int = 1  # steps stored before sampling may start
    error_buffer: float = 100_000.0  # allowed drift from the ratio, in sampled steps (see limiter.py)


@dataclass
class TablesConfig:
    """The two tables of the design: environment/dataset episodes, and imagined rollouts."""

    real: TableConfig = field(default_factory=TableConfig)
    imagined: TableConfig = field(default_factory=lambda: TableConfig(capacity_steps=20_000))

    def get(self, name: str) -> TableConfig:
        names = [f.name for f in fields(self)]
        if name not in names:
            raise KeyError(f"unknown replay table {name!r}; configured tables: {names}")
        return getattr(self, name)


@dataclass
class ReplayConfig:
    # auto: Redis when a URL is configured (it must answer), else a local redis-server in the run directory
    # when the binary is installed, else the embedded in-process store.
    backend: Literal["auto", "redis", "embedded"] = "auto"
    url: str = ""  # e.g. redis://host:6379/0 or rediss:// for TLS; empty: the variable named by url_env
    url_env: str = "REDIS_URL"
    password_env: str = "REDIS_PASSWORD"  # environment variable holding the password (never put it in YAML)
    tls: bool = False  # force TLS even for a redis:// URL
    tls_ca_file: str = ""  # CA bundle to verify the server certificate; empty: the system's
    key_prefix: str = "d4"  # namespace of this run's keys, so runs can share one Redis
    aof: bool = True  # local server keeps an append-only file in the run directory (False: memory only)
    appendfsync: Literal["always", "everysec", "no"] = "everysec"  # local server's AOF fsync policy
    max_chunk_bytes: int = 64 * 1024 * 1024  # larger chunks are refused (Redis' own limit is 512 MB)
    block_timeout_s: float = 600.0  # how long add/sample wait for the rate limiter before RateLimited
    socket_timeout_s: float = 60.0
    tables: TablesConfig = field(default_factory=TablesConfig)
