"""Replay store: chunks of episodes in, (B, T) batches out, on Redis or in-process. Only this package imports Redis.

    store = make_store(cfg.replay, run_dir)
    store.add("real", Chunk(frames, actions, rewards, terminals, episode_id="ep-1", step_offset=0))
    batch = store.sample("real", batch_size=16, length=64)      # batch.frames: (16, 64, H, W, C) uint8

Backend choice (cfg.backend):
- redis: the URL from cfg.url or $REDIS_URL (password from ${cfg.password_env} or the URL); without a URL a
  local redis-server is started in <run_dir>/redis (loopback, generated password, AOF) and stopped on close().
  Several comma-separated URLs, or cfg.local_servers > 1, shard every table over that many servers
  (ShardedStore, sharded_store.py).
- embedded: an in-process store (EmbeddedStore), nothing to start.
- auto: redis when a URL is configured (it must answer: a typo must not silently split a cluster into private
  stores), else a local redis-server when the binary is installed, else embedded.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from system.replay.chunk import Chunk, ChunkError, ChunkFormatError
from system.replay.config import ReplayConfig, TableConfig, TablesConfig
from system.replay.embedded_store import EmbeddedStore
from system.replay.limiter import RateLimited, RateLimiter
from system.replay.store import AddResult, Batch, NotAcknowledged, ReplayError, ReplayStore, TableStats

__all__ = ["AddResult", "Batch", "Chunk", "ChunkError", "ChunkFormatError", "EmbeddedStore", "NotAcknowledged",
           "RateLimited", "RateLimiter", "ReplayConfig", "ReplayError", "ReplayStore", "TableConfig", "TableStats",
           "TablesConfig", "make_store"]

log = logging.getLogger(__name__)


def make_store(cfg, run_dir: str | Path | None = None, seed: int | None = None) -> ReplayStore:
    """Builds the configured store. `cfg` is a ReplayConfig or the root Config (its `replay` section)."""
    cfg: ReplayConfig = getattr(cfg, "replay", cfg)
    url = cfg.url or (os.environ.get(cfg.url_env, "") if cfg.url_env else "")
    backend = cfg.backend
    if backend == "auto":
        backend = "redis" if url or shutil.which("redis-server") else "embedded"
        log.info("replay backend auto -> %s", backend)
    if backend == "embedded":
        return EmbeddedStore(cfg, seed)

    from system.replay.redis_store import RedisStore, connect  # redis only where it is used
    from system.replay.server import LocalRedisServer
    from system.replay.sharded_store import ShardedStore

    password = os.environ.get(cfg.password_env) if cfg.password_env else None
    urls = [u.strip() for u in url.split(",") if u.strip()]
    if urls:
        clients = []
        try:
            for u in urls:
                clients.append(connect(u, password, cfg))
        except BaseException:
            for client in clients:
                client.close()
            raise
        if len(clients) == 1:
            return RedisStore(cfg, clients[0], seed)
        return ShardedStore(cfg, [RedisStore(cfg, c, shard=(k, len(clients))) for k, c in enumerate(clients)], seed)
    if run_dir is None:
        raise ReplayError("replay backend redis without a URL starts a local redis-server, which needs a run "
                          f"directory; pass run_dir or set replay.url / ${cfg.url_env}")
    servers = []
    try:
        for k in range(cfg.local_servers):
            directory = Path(run_dir) / ("redis" if k == 0 else f"redis-{k}")
            servers.append(LocalRedisServer(directory, appendfsync=cfg.appendfsync, appendonly=cfg.aof).start())
        if len(servers) == 1:
            return RedisStore(cfg, connect(servers[0].url, servers[0].password, cfg), seed, owned_server=servers[0])
        return ShardedStore(cfg, [RedisStore(cfg, connect(s.url, s.password, cfg), owned_server=s,
                                             shard=(k, len(servers))) for k, s in enumerate(servers)], seed)
    except BaseException:
        for server in servers:
            server.stop()
        raise
