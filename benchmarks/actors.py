"""Env steps/s through N RLlib env runner actors (chunks into a real redis-server) vs one raw Crafter env; the
world-model service's act latency and batch fill under 1, 4, 16 concurrent callers; and env steps/s through N
env runners acting through the service against the raw rate of the same envs in one process.

    python benchmarks/actors.py --runners 2 --envs 2 --steps 2000
    python benchmarks/actors.py --part service --callers 1,4,16 --acts 20
    python benchmarks/actors.py --part policy --runner-counts 1,2,4 --envs 2 --steps 200 --max-wait-ms 10
    python benchmarks/actors.py --part imagine_load --callers 4 --acts 30 --imagine-callers 2 --max-wait-ms 10

Baseline, in the same run: single-process `CrafterEnv.step` with uniform random actions (no Ray, no replay).
Through the runners: `system/runtime/collection.py` driving N runners, each stepping `--envs` envs and writing
every fragment with `add_many` before answering; the clock starts after the runners are up.
Service (`--part service`): one WorldModelService actor with the smoke config's models (random weights: latency
does not depend on them), max_batch 16, a `--max-wait-ms` gathering window (2 ms), one torch thread; N caller
threads in the driver each play one episode of `--acts` real Crafter frames (act, wait, act) through it. Figures per N: act
latency p50/p99 seen by the caller (Ray round trip included) and the mean batch size, fill = mean batch / N.
Policy (`--part policy`): per N, one WorldModelService as above (slots and max_batch N x envs) and N env runners
with `policy="service"` (actors/service_policy_module.py), chunks into a real redis-server, driven by
collect_env_steps to `--steps` env steps; the clock starts after one warm-up call per runner (its envs' first
reset, which generates the worlds, and its first episodes opened). Figures per N: env steps/s, the ratio to the
raw rate of the same N x envs Crafter envs stepped round-robin in one process for `--steps` steps with uniform
actions, first reset off the clock too (no Ray, no service; measured in the same run, just before), the runner-side act latency p50/p99 (one module
forward: its envs' act calls sent together, Ray round trip included), and the service's mean batch with
fill = mean batch / (N x envs), the share of live episodes one batch catches.
Imagine load (`--part imagine_load`): one service as above with heads and prior, `--callers` (the last count)
live episodes acting alone, then again while `--imagine-callers` threads keep imagine requests of the smoke
config's phase-3 size (8 contexts of 8 frames, horizon 16) in flight; the service runs a rollout a frame at a
time with acts answered between frames. Figures: act p50/p99 alone and beside imagination, the rollout round
trip p50 and per frame; ratio = act p99 beside imagination / rollout p50 (below 1: acts do not wait whole
rollouts).
Prints one JSON object last: name, config, device, figures, ratio vs the named baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
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


def raw_steps_per_s(steps: int, max_episode_steps: int, envs: int = 1) -> float:
    """Env steps/s of `envs` Crafter envs stepped round-robin in this process, uniform actions (first reset off
    the clock; later resets on it)."""
    pool = [CrafterEnv(size=(64, 64), seed=k, max_episode_steps=max_episode_steps) for k in range(envs)]
    rng = np.random.default_rng(0)
    for env in pool:
        env.reset()
    start = time.perf_counter()
    for step in range(steps):
        env = pool[step % envs]
        _, _, terminated, truncated, _ = env.step(int(rng.integers(17)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def policy_figures(runner_counts: list[int], args, replay_cfg) -> dict:
    from actors.world_model_service import WorldModelService

    figures = {}
    for n in runner_counts:
        live = n * args.envs
        raw = raw_steps_per_s(args.steps, args.max_episode_steps, envs=live)
        service = WorldModelService.remote(smoke_service_spec(live, live, args.max_wait_ms))
        ray.get(service.stats.remote())  # built before the clock starts
        specs = [EnvRunnerSpec(index=k, envs=args.envs, max_episode_steps=args.max_episode_steps, policy="service",
                               service=service) for k in range(n)]
        runners = [CrafterEnvRunner.remote(spec, replay_cfg) for spec in specs]
        # warm-up off the clock: each runner's first reset (world generation) and its first episodes opened
        ray.get([r.collect.remote(args.envs) for r in runners])
        warm = [len(ray.get(r.act_latencies.remote())) for r in runners]
        before = ray.get(service.stats.remote())
        report = collect_env_steps(runners, args.steps, args.steps_per_call)
        latencies = [s for r, w in zip(runners, warm) for s in ray.get(r.act_latencies.remote())[w:]]
        stats = ray.get(service.stats.remote())
        mean_batch = (stats["requests"] - before["requests"]) / max(stats["batches"] - before["batches"], 1)
        ray.get([r.release.remote() for r in runners])
        for actor in runners + [service]:
            ray.kill(actor)
        figures[f"runners_{n}"] = {"envs": live, "env_steps": report.env_steps,
                                   "env_steps_per_s": round(report.env_steps_per_s, 1),
                                   "raw_env_steps_per_s": round(raw, 1),
                                   "ratio_vs_raw": round(report.env_steps_per_s / raw, 4),
                                   "act_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
                                   "act_p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1),
                                   "mean_batch": round(mean_batch, 2), "fill": round(mean_batch / live, 3)}
    return figures


def smoke_service_spec(slots: int, max_batch: int, max_wait_ms: float):
    from actors.world_model_service import ServiceSpec
    from system.envs.action_space import crafter_action_space
    from system.run.config import load

    cfg = load(["--config", str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")])
    return ServiceSpec(cfg.tokenizer.model, cfg.dynamics.model, cfg.agent.heads, crafter_action_space(),
                       cfg.dynamics.generation, slots=slots, max_batch=max_batch, max_wait_ms=max_wait_ms, threads=1)


def play_episodes(service, frames: list, callers: int, latencies: list) -> None:
    """`callers` threads each play one episode of `frames` through the service (act, wait, act), appending each
    act's round trip in seconds to `latencies`."""
    def play(k: int) -> None:
        slot, last = ray.get(service.open_episode.remote(seed=k)), np.array([-1])
        for t, frame in enumerate(frames):
            start = time.perf_counter()
            last, _, _ = ray.get(service.act.remote(slot, frame, last, frame_index=t))
            latencies.append(time.perf_counter() - start)
        ray.get(service.close_episode.remote(slot))

    threads = [threading.Thread(target=play, args=(k,)) for k in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def service_figures(callers: list[int], acts: int, max_wait_ms: float) -> dict:
    from actors.world_model_service import WorldModelService

    env = CrafterEnv(size=(64, 64), seed=0)
    frames = [env.reset()[0]] + [env.step(int(a))[0] for a in np.random.default_rng(0).integers(17, size=acts - 1)]
    figures = {}
    for n in callers:
        service = WorldModelService.remote(smoke_service_spec(max(callers), 16, max_wait_ms))
        ray.get(service.stats.remote())  # built before the clock starts
        latencies: list[float] = []
        start = time.perf_counter()
        play_episodes(service, frames[:acts], n, latencies)
        seconds = time.perf_counter() - start
        stats = ray.get(service.stats.remote())
        ray.kill(service)
        figures[f"callers_{n}"] = {"act_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
                                   "act_p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1),
                                   "mean_batch": round(stats["mean_batch"], 2),
                                   "fill": round(stats["mean_batch"] / n, 3),
                                   "acts_per_s": round(n * acts / seconds, 1)}
    return figures


def imagine_load_figures(callers: int, acts: int, imagine_callers: int, max_wait_ms: float) -> dict:
    """Act latency of `callers` live episodes alone, then while `imagine_callers` threads keep imagine requests
    (the smoke config's phase-3 batch: 8 start contexts of 8 frames, horizon 16) in flight on the same service."""
    from actors.world_model_service import WorldModelService
    from system.model.agent_heads import AgentHeads
    from system.run.config import load

    cfg = load(["--config", str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")])
    train = cfg.imagination.train
    env = CrafterEnv(size=(64, 64), seed=0)
    rng = np.random.default_rng(0)
    frames = [env.reset()[0]] + [env.step(int(a))[0] for a in rng.integers(17, size=max(acts, train.context) - 1)]
    context = np.stack([np.stack(frames[:train.context])] * train.batch_size)        # (B, T0, 64, 64, 3)
    context_actions = rng.integers(0, 17, (train.batch_size, train.context, 1))
    spec = smoke_service_spec(callers, max(callers, imagine_callers * train.batch_size), max_wait_ms)
    service = WorldModelService.remote(spec)
    heads = AgentHeads(spec.heads, spec.action_space.components, spec.dynamics.agent_tokens,
                       spec.dynamics.transformer.dim)
    ray.get(service.set_weights.remote(1, ray.put({"heads": heads.state_dict(), "prior": heads.policy.state_dict()})))

    alone: list[float] = []
    play_episodes(service, frames[:acts], callers, alone)
    rollouts: list[float] = []
    done = threading.Event()

    def imagine(k: int) -> None:
        while not done.is_set():
            start = time.perf_counter()
            ray.get(service.imagine.remote(context, context_actions, horizon=train.horizon, seed=k))
            rollouts.append(time.perf_counter() - start)

    imaginers = [threading.Thread(target=imagine, args=(k,)) for k in range(imagine_callers)]
    for thread in imaginers:
        thread.start()
    while not rollouts:   # acts start once rollouts are under way
        time.sleep(0.01)
    loaded: list[float] = []
    start = time.perf_counter()
    play_episodes(service, frames[:acts], callers, loaded)
    seconds = time.perf_counter() - start
    done.set()
    for thread in imaginers:
        thread.join()
    stats = ray.get(service.stats.remote())
    ray.kill(service)

    def ms(values: list[float], q: float) -> float:
        return round(1000 * float(np.percentile(values, q)), 1)

    return {"acts_alone": {"act_p50_ms": ms(alone, 50), "act_p99_ms": ms(alone, 99)},
            "acts_beside_imagination": {"act_p50_ms": ms(loaded, 50), "act_p99_ms": ms(loaded, 99),
                                        "acts_per_s": round(callers * acts / seconds, 1)},
            "imagine_rollout": {"p50_ms": ms(rollouts, 50), "rollouts": len(rollouts),
                                "frame_ms": round(ms(rollouts, 50) / train.horizon, 1),
                                "rows": train.batch_size, "horizon": train.horizon},
            "imagine_pieces": stats["resumed_pieces"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["runners", "service", "policy", "imagine_load"], default="runners")
    parser.add_argument("--imagine-callers", type=int, default=2, help="imagine_load: threads sending rollouts")
    parser.add_argument("--runner-counts", default="1,2,4", help="policy: env runner counts, comma-separated")
    parser.add_argument("--callers", default="1,4,16", help="service: concurrent callers, comma-separated")
    parser.add_argument("--acts", type=int, default=20, help="service: act calls per caller")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="service: gathering window")
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--envs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--steps-per-call", type=int, default=200)
    parser.add_argument("--max-episode-steps", type=int, default=200)
    args = parser.parse_args()
    device = f"cpu x{os.cpu_count()} ({platform.machine()}), no GPU"
    if args.part in ("service", "imagine_load"):
        work = tempfile.mkdtemp(prefix="bench-", dir="/tmp")
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 _temp_dir=os.path.join(work, "ray"), log_to_driver=False)
        try:
            if args.part == "service":
                figures = service_figures([int(n) for n in args.callers.split(",")], args.acts, args.max_wait_ms)
            else:
                figures = imagine_load_figures(int(args.callers.split(",")[-1]), args.acts, args.imagine_callers,
                                               args.max_wait_ms)
        finally:
            ray.shutdown()
            shutil.rmtree(work, ignore_errors=True)
        if args.part == "service":
            print(json.dumps({"name": "world_model_service", "config": vars(args), "device": device,
                              "figures": figures, "baseline": "1 caller (no batching possible)", "ratio": None}))
        else:
            loaded, rollout = figures["acts_beside_imagination"], figures["imagine_rollout"]
            print(json.dumps({"name": "acts_beside_imagination", "config": vars(args), "device": device,
                              "figures": figures, "baseline": "one imagine rollout's round trip, same run",
                              "ratio": round(loaded["act_p99_ms"] / rollout["p50_ms"], 3)}))
        return

    if args.part == "policy":
        work = tempfile.mkdtemp(prefix="bench-", dir="/tmp")
        server = LocalRedisServer(os.path.join(work, "redis"), appendonly=False).start()
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 _temp_dir=os.path.join(work, "ray"), log_to_driver=False)
        try:
            cfg = ReplayConfig(backend="redis", url=f"redis://:{server.password}@127.0.0.1:{server.port}/0",
                               tables=TablesConfig(real=TableConfig(capacity_steps=100 * args.steps)))
            figures = policy_figures([int(n) for n in args.runner_counts.split(",")], args, cfg)
        finally:
            ray.shutdown()
            server.kill()
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({"name": "env_runners_through_service", "config": vars(args), "device": device,
                          "figures": figures,
                          "baseline": "raw in-process CrafterEnv.step of the same N x envs envs, same run",
                          "ratio": {k: v["ratio_vs_raw"] for k, v in figures.items()}}))
        return

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
              "device": device,
              "figures": {"runners_env_steps_per_s": round(report.env_steps_per_s, 1),
                          "raw_env_steps_per_s": round(raw, 1), "env_steps": report.env_steps,
                          "chunks": len(report.chunks)},
              "baseline": "raw single-process CrafterEnv.step, same run",
              "ratio": round(report.env_steps_per_s / raw, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
