"""Env steps/s through N RLlib env runner actors (chunks into a real redis-server) vs one raw Crafter env.

    python benchmarks/actors.py --runners 2 --envs 2 --steps 2000

Baseline, in the same run: single-process `CrafterEnv.step` with uniform random actions (no Ray, no replay).
Through the runners: `system/runtime/collection.py` driving N runners, each stepping `--envs` envs and writing
every fragment with `add_many` before answering; the clock starts after the runners are up. Prints one JSON
object last: name, config, device, figures, ratio vs the named baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Run as `python benchmarks/actors.py`, this file's folder comes first on sys.path and its name would shadow
# the `actors` package: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import ray  # noqa: E402

from actors.crafter_env_runner import CrafterEnvRunner, EnvRunnerSpec  # noqa: E402
from system.envs.crafter_env import CrafterEnv  # noqa: E402
from system.replay import ReplayConfig, TableConfig, TablesConfig  # noqa: E402
from system.replay.server import LocalRedisServer  # noqa: E402
from system.runtime.collection import collect_env_steps  # noqa: E402


def raw_steps_per_s(steps: int, max_episode_steps: int) -> float:
    env = CrafterEnv(size=(64, 64), seed=0, max_episode_steps=max_episode_steps)
    rng = np.random.default_rng(0)
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(17)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--envs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--steps-per-call", type=int, default=200)
    parser.add_argument("--max-episode-steps", type=int, default=200)
    args = parser.parse_args()

    raw = raw_steps_per_s(args.steps // 2, args.max_episode_steps)
    work = tempfile.mkdtemp(prefix="bench-", dir="/tmp")
    server = LocalRedisServer(os.path.join(work, "redis"), appendonly=False).start()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=os.path.join(work, "ray"),
             log_to_driver=False)
    try:
        cfg = ReplayConfig(backend="redis", url=f"redis://:{server.password}@127.0.0.1:{server.port}/0",
                           tables=TablesConfig(real=TableConfig(capacity_steps=4 * args.steps)))
        runners = [CrafterEnvRunner.options(max_restarts=-1).remote(
            EnvRunnerSpec(index=k, envs=args.envs, max_episode_steps=args.max_episode_steps), cfg)
            for k in range(args.runners)]
        ray.get([r.pid.remote() for r in runners])  # up and built before the clock starts
        report = collect_env_steps(runners, args.steps, args.steps_per_call)
    finally:
        ray.shutdown()
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
    result = {"name": "env_runners", "config": vars(args),
              "device": f"cpu x{os.cpu_count()} ({platform.machine()}), no GPU",
              "figures": {"runners_env_steps_per_s": round(report.env_steps_per_s, 1),
                          "raw_env_steps_per_s": round(raw, 1), "env_steps": report.env_steps,
                          "chunks": len(report.chunks)},
              "baseline": "raw single-process CrafterEnv.step, same run",
              "ratio": round(report.env_steps_per_s / raw, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
