"""Replay store throughput beside plain redis-py on the same server, with the same bytes, in the same run; and
the store on 1 vs several servers (a table sharded over them, sharded_store.py).

    python benchmarks/replay.py [--repeats 5] [--chunks 256] [--batches 64] [--aof on|off] [--appendfsync everysec]
                                [--shards 1,3]

Starts a local redis-server as a run does (loopback, password, AOF into a temporary run directory), then
measures, interleaving the contenders batch by batch so that they share the server's and the disk's state:
- ingest of 64-step chunks of 64x64x3 frames: raw pipelined SET of the encoded chunks (16 per pipeline)
  vs `store.add_many` (16 chunks per call) vs `store.add` (one chunk per call);
- sampling: raw pipelined GET of B random whole chunks vs `store.sample(B, T)` (B sequences of T steps as
  numpy arrays, usually spanning two chunks and read with GETRANGE). Both move B x 64 steps of bytes.
Both key spaces hold the same number of chunks (the store evicts FIFO, the raw keys are overwritten in a ring).
Then, for each count in --shards, fresh local servers (as `replay.local_servers` starts them) and one client:
`add_many` of 16 chunks and `sample(16, 64)`, the same sizes, timed alone (the shards' calls run in parallel
threads of the one client). Figures are MB/s of chunk bytes (total bytes / total time within a repeat) and
sequences/s, each the median over repeats; ratios are store / raw of those medians. Progress goes to
stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from system.replay import Chunk, EmbeddedStore, ReplayConfig, TableConfig, TablesConfig, make_store  # noqa: E402
from system.replay.chunk import encode_chunk  # noqa: E402
from system.replay.redis_store import RedisStore, connect  # noqa: E402
from system.replay.server import LocalRedisServer  # noqa: E402

PIPELINE = 16  # chunks per raw pipeline and per add_many call


def make_chunks(rng, count, first_episode, args, chunks_per_episode=8):
    chunks = []
    for i in range(count):
        episode, part = divmod(first_episode * chunks_per_episode + i, chunks_per_episode)
        actions = rng.integers(0, 11, (args.chunk_len, args.action_dim), dtype=np.int32)
        rewards = rng.random(args.chunk_len, dtype=np.float32)
        if part == 0:
            actions[0], rewards[0] = -1, 0
        frames = rng.integers(0, 256, (args.chunk_len, args.frame, args.frame, 3), dtype=np.uint8)
        chunks.append(Chunk(frames=frames, actions=actions, rewards=rewards, terminals=np.zeros(args.chunk_len, bool),
                            episode_id=f"bench-{episode}", step_offset=part * args.chunk_len))
    return chunks


class Clock:
    """Accumulates seconds and bytes per contender."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.nbytes: dict[str, int] = {}
        self.items: dict[str, int] = {}

    def run(self, name, fn, nbytes, items):
        start = time.perf_counter()
        fn()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        self.nbytes[name] = self.nbytes.get(name, 0) + nbytes
        self.items[name] = self.items.get(name, 0) + items

    def mb_s(self, name):
        return round(self.nbytes[name] / self.seconds[name] / 1e6, 1)

    def per_s(self, name):
        return round(self.items[name] / self.seconds[name], 1)

    def figures(self) -> dict[str, float]:
        out = {f"{name}_mb_s": self.mb_s(name) for name in self.seconds}
        out.update({f"{name}_seq_s": self.per_s(name) for name in self.seconds if "sample" in name})
        return out


def measure_shards(args, servers: int) -> dict[str, float]:
    """add_many and sample throughput of one client on a table sharded over `servers` fresh local servers."""
    rng = np.random.default_rng(1)
    cfg = ReplayConfig(backend="redis", local_servers=servers, appendfsync=args.appendfsync, aof=args.aof == "on",
                       max_chunk_bytes=2**30, tables=TablesConfig(real=TableConfig(
                           capacity_steps=args.capacity_chunks * args.chunk_len)))
    workdir = tempfile.TemporaryDirectory(prefix="replay-bench-shards-")
    store = make_store(cfg, workdir.name, seed=0)
    repeats, episode = [], 10**6
    try:
        for repeat in range(args.repeats):
            clock = Clock()
            for _ in tqdm(range(0, args.chunks, PIPELINE), desc=f"{servers} servers: ingest {repeat + 1}",
                          file=sys.stderr):
                # Episodes of 2 chunks, so that the 16 chunks of a call spread over the servers (a whole episode
                # lives on one); the same data for every server count.
                chunks = make_chunks(rng, PIPELINE, episode, args, chunks_per_episode=2)
                episode += PIPELINE // 2
                nbytes = sum(c.length * c.layout.record_size for c in chunks)
                clock.run("ingest", lambda: store.add_many("real", chunks), nbytes, PIPELINE)
            sample_bytes = args.batch * args.length * chunks[0].layout.record_size
            for _ in tqdm(range(args.batches), desc=f"{servers} servers: sample {repeat + 1}", file=sys.stderr):
                clock.run("sample", lambda: store.sample("real", args.batch, args.length), sample_bytes, args.batch)
            repeats.append({"ingest_mb_s": clock.mb_s("ingest"), "sample_mb_s": clock.mb_s("sample"),
                            "sample_seq_s": clock.per_s("sample")})
    finally:
        store.close()
        workdir.cleanup()
    return {name: round(statistics.median(r[name] for r in repeats), 1) for name in repeats[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="figures are medians over repeats")
    parser.add_argument("--chunks", type=int, default=256, help="chunks ingested per contender and repeat")
    parser.add_argument("--batches", type=int, default=64, help="sample batches per contender and repeat")
    parser.add_argument("--capacity-chunks", type=int, default=256, help="table size (and raw key ring size)")
    parser.add_argument("--chunk-len", type=int, default=64)
    parser.add_argument("--frame", type=int, default=64)
    parser.add_argument("--action-dim", type=int, default=25, help="factored action components (MineRL-like)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--aof", choices=["on", "off"], default="on")
    parser.add_argument("--appendfsync", default="everysec", choices=["always", "everysec", "no"])
    parser.add_argument("--shards", default="1,3", help="server counts to compare (empty: skip)")
    args = parser.parse_args()
    assert args.chunks % PIPELINE == 0 and args.chunks >= args.capacity_chunks

    rng = np.random.default_rng(0)
    cfg = ReplayConfig(backend="redis", appendfsync=args.appendfsync, max_chunk_bytes=2**30,
                       tables=TablesConfig(real=TableConfig(capacity_steps=args.capacity_chunks * args.chunk_len)))
    workdir = tempfile.TemporaryDirectory(prefix="replay-bench-")
    server = LocalRedisServer(Path(workdir.name) / "redis", appendfsync=args.appendfsync,
                              appendonly=args.aof == "on").start()
    raw = connect(server.url, server.password, cfg)
    store = RedisStore(cfg, connect(server.url, server.password, cfg), seed=0)
    embedded = EmbeddedStore(cfg, seed=0)
    repeats = []
    episode = 0
    try:
        for repeat in range(args.repeats):
            clock = Clock()
            for i in tqdm(range(0, args.chunks, PIPELINE), desc=f"ingest {repeat + 1}/{args.repeats}",
                          file=sys.stderr):
                # Three fresh groups of chunks: every contender writes new episodes, never a duplicate.
                groups = [make_chunks(rng, PIPELINE, episode + k * PIPELINE, args) for k in range(3)]
                episode += 3 * PIPELINE
                blobs = [encode_chunk(c) for c in groups[0]]  # the raw contender gets its bytes for free

                def raw_set():
                    pipe = raw.pipeline(transaction=False)
                    for j, blob in enumerate(blobs):
                        pipe.set(f"raw:{(i + j) % args.capacity_chunks}", blob)
                    pipe.execute()

                nbytes = sum(len(b) for b in blobs)
                clock.run("raw_ingest", raw_set, nbytes, PIPELINE)
                clock.run("store_ingest_add_many", lambda: store.add_many("real", groups[1]), nbytes, PIPELINE)
                clock.run("store_ingest_add", lambda: [store.add("real", c) for c in groups[2]], nbytes, PIPELINE)
                clock.run("embedded_ingest", lambda: embedded.add_many("real", groups[1]), nbytes, PIPELINE)
            chunk_bytes = len(blobs[0])
            sample_bytes = args.batch * args.length * groups[0][0].layout.record_size
            for _ in tqdm(range(args.batches), desc=f"sample {repeat + 1}/{args.repeats}", file=sys.stderr):
                keys = rng.choice(args.capacity_chunks, args.batch)

                def raw_get():
                    pipe = raw.pipeline(transaction=False)
                    for k in keys:
                        pipe.get(f"raw:{k}")
                    assert all(pipe.execute())

                clock.run("raw_sample", raw_get, args.batch * chunk_bytes, args.batch)
                clock.run("store_sample", lambda: store.sample("real", args.batch, args.length), sample_bytes,
                          args.batch)
                clock.run("embedded_sample", lambda: embedded.sample("real", args.batch, args.length),
                          sample_bytes, args.batch)
            repeats.append(clock.figures())
    finally:
        store.close()
        raw.close()
        server.stop()
        workdir.cleanup()

    sharding = {n: measure_shards(args, int(n)) for n in args.shards.split(",") if n.strip()}
    figures = {name: round(statistics.median(r[name] for r in repeats), 1) for name in repeats[0]}
    ratios = {
        "ingest_add_many_vs_raw": round(figures["store_ingest_add_many_mb_s"] / figures["raw_ingest_mb_s"], 3),
        "ingest_add_vs_raw": round(figures["store_ingest_add_mb_s"] / figures["raw_ingest_mb_s"], 3),
        "sample_vs_raw": round(figures["store_sample_mb_s"] / figures["raw_sample_mb_s"], 3),
    }
    result = {
        "name": "replay",
        "date": datetime.date.today().isoformat(),
        "config": vars(args),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "device": "cpu"},
        "chunk_bytes": chunk_bytes,
        "figures_median": figures,
        "ratios": ratios,
        "sample_ratio_per_repeat": [round(r["store_sample_mb_s"] / r["raw_sample_mb_s"], 3) for r in repeats],
        "ingest_ratio_per_repeat": [round(r["store_ingest_add_mb_s"] / r["raw_ingest_mb_s"], 3) for r in repeats],
        "target_ratio": 0.7,
        "servers": sharding,
    }
    for name, value in ratios.items():
        print(f"{name}: {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
