"""Replay store throughput beside plain redis-py on the same server and the same bytes.

    python benchmarks/replay.py [--rounds 5] [--chunks 64] [--appendfsync everysec]

Starts a local redis-server exactly as a run does (loopback, password, AOF with the given fsync policy), then
alternates, round by round, between
- ingest: raw pipelined SET of the encoded chunks (16 per pipeline) vs `store.add` of the same chunks;
- sample: raw pipelined GET of B random whole chunks vs `store.sample(B, T)` (B sequences of T steps as numpy
  arrays; they mostly span two chunks, read with GETRANGE).
Figures are MB/s of chunk bytes moved (sampling counts the B*T step records returned) and sequences/s; each is
the median over rounds, and the ratio is store / raw. Progress goes to stderr; the last stdout line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from system.replay import Chunk, EmbeddedStore, ReplayConfig, TableConfig, TablesConfig  # noqa: E402
from system.replay.chunk import encode_chunk  # noqa: E402
from system.replay.redis_store import RedisStore, connect  # noqa: E402
from system.replay.server import LocalRedisServer  # noqa: E402


def make_chunks(rng, count, first_episode, chunk_len, frame, action_dim, chunks_per_episode=8):
    chunks = []
    for i in range(count):
        episode, part = divmod(first_episode * chunks_per_episode + i, chunks_per_episode)
        actions = rng.integers(0, 11, (chunk_len, action_dim), dtype=np.int32)
        rewards = rng.random(chunk_len, dtype=np.float32)
        if part == 0:
            actions[0], rewards[0] = -1, 0
        chunks.append(Chunk(frames=rng.integers(0, 256, (chunk_len, frame, frame, 3), dtype=np.uint8),
                            actions=actions, rewards=rewards, terminals=np.zeros(chunk_len, bool),
                            episode_id=f"bench-{episode}", step_offset=part * chunk_len))
    return chunks


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=64, help="chunks ingested per round and method")
    parser.add_argument("--batches", type=int, default=16, help="sample batches per round and method")
    parser.add_argument("--chunk-len", type=int, default=64)
    parser.add_argument("--frame", type=int, default=64)
    parser.add_argument("--action-dim", type=int, default=25)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--capacity-chunks", type=int, default=256)
    parser.add_argument("--appendfsync", default="everysec", choices=["always", "everysec", "no"])
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    cfg = ReplayConfig(backend="redis", appendfsync=args.appendfsync, max_chunk_bytes=2**30,
                       tables=TablesConfig(real=TableConfig(capacity_steps=args.capacity_chunks * args.chunk_len)))
    workdir = tempfile.TemporaryDirectory(prefix="replay-bench-")
    server = LocalRedisServer(Path(workdir.name) / "redis", appendfsync=args.appendfsync).start()
    client = connect(server.url, server.password, cfg)
    store = RedisStore(cfg, connect(server.url, server.password, cfg), seed=0)
    embedded = EmbeddedStore(cfg, seed=0)
    record_size = make_chunks(rng, 1, 0, 1, args.frame, args.action_dim)[0].layout.record_size
    sample_bytes = args.batch * args.length * record_size

    figures: dict[str, list[float]] = {}
    episode = 0
    try:
        for round_index in tqdm(range(args.rounds), desc="rounds", file=sys.stderr):
            chunks = make_chunks(rng, args.chunks, episode, args.chunk_len, args.frame, args.action_dim)
            episode += args.chunks // 8 + 1
            blobs = [encode_chunk(c) for c in chunks]
            chunk_bytes = sum(len(b) for b in blobs)

            def raw_ingest():
                for i in range(0, len(blobs), 16):
                    pipe = client.pipeline(transaction=False)
                    for j, blob in enumerate(blobs[i:i + 16], start=i):
                        pipe.set(f"raw:{round_index % 4}:{j}", blob)
                    pipe.execute()

            def store_ingest(target):
                return lambda: [target.add("real", c) for c in chunks]

            raw_keys = [f"raw:{round_index % 4}:{j}" for j in range(len(blobs))]

            def raw_sample():
                for _ in range(args.batches):
                    pipe = client.pipeline(transaction=False)
                    for k in rng.choice(len(raw_keys), args.batch):
                        pipe.get(raw_keys[k])
                    replies = pipe.execute()
                    assert all(replies)

            def store_sample(target):
                return lambda: [target.sample("real", args.batch, args.length) for _ in range(args.batches)]

            for name, fn, nbytes in [
                ("raw_ingest", raw_ingest, chunk_bytes),
                ("store_ingest", store_ingest(store), chunk_bytes),
                ("embedded_ingest", store_ingest(embedded), chunk_bytes),
                ("raw_sample", raw_sample, args.batches * args.batch * len(blobs[0])),
                ("store_sample", store_sample(store), args.batches * sample_bytes),
                ("embedded_sample", store_sample(embedded), args.batches * sample_bytes),
            ]:
                seconds = timed(fn)
                figures.setdefault(f"{name}_mb_s", []).append(nbytes / seconds / 1e6)
                if name.endswith("sample"):
                    figures.setdefault(f"{name}_seq_s", []).append(args.batches * args.batch / seconds)
                elif name == "store_ingest":
                    figures.setdefault("store_ingest_chunks_s", []).append(len(chunks) / seconds)
    finally:
        store.close()
        client.close()
        server.stop()
        workdir.cleanup()

    medians = {k: round(statistics.median(v), 1) for k, v in figures.items()}
    result = {
        "name": "replay",
        "config": {k: v for k, v in vars(args).items()},
        "host": {"machine": platform.machine(), "processor": platform.processor() or "unknown",
                 "python": platform.python_version(), "device": "cpu"},
        "bytes_per_step": record_size,
        "figures_median": medians,
        "ratio_ingest_vs_raw": round(medians["store_ingest_mb_s"] / medians["raw_ingest_mb_s"], 3),
        "ratio_sample_vs_raw": round(medians["store_sample_mb_s"] / medians["raw_sample_mb_s"], 3),
        "target_ratio": 0.7,
    }
    for key in ("ingest", "sample"):
        print(f"{key}: store {medians[f'store_{key}_mb_s']} MB/s, raw redis-py {medians[f'raw_{key}_mb_s']} MB/s, "
              f"ratio {result[f'ratio_{key}_vs_raw']}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
