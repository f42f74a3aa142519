"""The live evaluator's start-up time and episodes/s: play_episodes in the driver (the reference), through the
world-model service actor, and through an RLlib EnvRunnerGroup acting through the service (eval.backend
driver | service | rllib).

    python benchmarks/evaluator.py                          # the smoke config's models and eval settings
    python benchmarks/evaluator.py --episodes 8 --envs 4 --max-steps 100 --config configs/smoke.yaml

Models: the config's tokenizer, dynamics and policy head with random weights (seed 0; cost does not depend on
the weights), arg-max actions, so every path plays the same episodes (checked: `same_episodes`). Each path
plays `--episodes` episodes, `--envs` at once, in the evaluation worlds, at most `--max-steps` steps each.
Start-up: driver, building the ActingService; service, starting the actor and loading the weights; rllib, that
plus building the EnvRunnerGroup until every runner is up (RLlib and torch imported, env and module built).
Starting Ray itself is measured once and reported apart (the main job pays it once per process, shared with
any other Ray work of the run). Play: from the first reset to the last episode's end (world generation at reset
included), all paths; episodes/s and env steps/s over that time. One torch thread in the driver and the service,
as the main job's evaluation uses; the service gathers for 10 ms (system/runtime/service_eval.py), and its
mean batch (frames per step) is reported. Prints one JSON object last: name, config, machine, load average before and
after, figures per path, ratio of episodes/s to the driver path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])   # the repository root, not benchmarks/ (shadows actors)

import ray  # noqa: E402
import torch  # noqa: E402

from system.envs.action_space import crafter_action_space  # noqa: E402
from system.imagination.acting_service import ActingService  # noqa: E402
from system.model.agent_heads import AgentHeads  # noqa: E402
from system.model.dynamics import Dynamics  # noqa: E402
from system.model.tokenizer import Tokenizer  # noqa: E402
from system.phases.live_eval import crafter_eval_envs, eval_seed, play_episodes  # noqa: E402
from system.run.config import load  # noqa: E402
from system.runtime.rllib_eval import play_with_rllib  # noqa: E402
from system.runtime.service_eval import RemoteService, start_service  # noqa: E402


def models(cfg):
    torch.manual_seed(0)
    space = crafter_action_space()
    dynamics = Dynamics(cfg.dynamics.model, space).eval()
    heads = AgentHeads(cfg.agent.heads, space.components, cfg.dynamics.model.agent_tokens,
                       cfg.dynamics.model.transformer.dim).eval()
    return Tokenizer(cfg.tokenizer.model).eval(), dynamics, heads


def figures(startup_s: float, play_s: float, summary: dict) -> dict:
    steps = int(sum(summary["lengths"]))
    return {"startup_s": round(startup_s, 2), "play_s": round(play_s, 2), "episodes": summary["episodes"],
            "env_steps": steps, "episodes_per_s": round(summary["episodes"] / play_s, 4),
            "env_steps_per_s": round(steps / play_s, 2), "returns": summary["returns"], "lengths": summary["lengths"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--paths", default="driver,service,rllib")
    args = parser.parse_args()
    cfg = load(["--config", args.config, f"eval.episodes={args.episodes}", f"eval.envs={args.envs}",
                f"eval.max_steps={args.max_steps}", "eval.argmax=true"])
    tokenizer, dynamics, heads = models(cfg)
    make_env, envs = crafter_eval_envs(cfg), min(args.envs, args.episodes)
    load_before, out = os.getloadavg(), {}
    torch.set_num_threads(1)
    paths = args.paths.split(",")
    if "driver" in paths:
        start = time.perf_counter()
        service = ActingService(tokenizer, dynamics, heads.policy, cfg.dynamics.generation, slots=envs,
                                argmax=True, seed=eval_seed(cfg.seed))
        ready = time.perf_counter()
        summary = play_episodes(service, make_env, args.episodes, envs)
        out["driver"] = figures(ready - start, time.perf_counter() - ready, summary)
    start = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    ray_init_s = time.perf_counter() - start
    try:
        if "service" in paths:
            start = time.perf_counter()
            actor = start_service(cfg, tokenizer, dynamics, heads, 1, slots=envs)
            ready = time.perf_counter()
            summary = play_episodes(RemoteService(actor), make_env, args.episodes, envs)
            out["service"] = figures(ready - start, time.perf_counter() - ready, summary)
            out["service"]["mean_batch"] = round(ray.get(actor.stats.remote())["mean_batch"], 2)
            ray.kill(actor)
        if "rllib" in paths:
            start = time.perf_counter()
            actor = start_service(cfg, tokenizer, dynamics, heads, 1, slots=envs)
            service_s = time.perf_counter() - start
            summary, _, timing = play_with_rllib(cfg, actor, envs, args.episodes)
            out["rllib"] = figures(service_s + timing["startup_s"], timing["play_s"], summary)
            out["rllib"]["runners_startup_s"] = round(timing["startup_s"], 2)
            out["rllib"]["mean_batch"] = round(ray.get(actor.stats.remote())["mean_batch"], 2)
            ray.kill(actor)
    finally:
        ray.shutdown()
    base = out.get("driver", {}).get("episodes_per_s")
    print(json.dumps({
        "name": "evaluator", "config": vars(args), "device": "cpu",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "torch": torch.__version__},
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "ray_init_s": round(ray_init_s, 2), "figures": out,
        "same_episodes": len({json.dumps([f["returns"], f["lengths"]]) for f in out.values()}) == 1,
        "ratio_episodes_per_s_vs_driver": {k: round(v["episodes_per_s"] / base, 3) for k, v in out.items()}
        if base else None}))


if __name__ == "__main__":
    main()
