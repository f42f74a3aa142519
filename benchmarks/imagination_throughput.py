"""Imagined steps per second of phase 3: B rollouts of horizon H with K shortcut steps, policy acting.

    python -m benchmarks.imagination_throughput --config configs/smoke.yaml [--batch 8 --horizon 16 --k 4]

Builds the dynamics model and agent heads of the config (random weights: speed does not depend on training),
then times (1) ImaginationTrainer.imagine: policy sampling, K denoising passes + one context pass per frame,
reward / continuation / slow-value annotation, and (2) imagine + one train_step (PMPO + value update).
Baseline: `rollout` (system/imagination/generation.py) generating the same B x H frames from fixed actions, so
the ratio is the cost of acting and annotating over plain generation. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from system.envs.action_space import crafter_action_space
from system.imagination.generation import GenerationConfig, rollout
from system.model.agent_heads import AgentHeads
from system.model.dynamics import Dynamics
from system.run.config import load
from system.training.imagination_trainer import ImaginationTrainer


def best_of(repeats: int, fn) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load(["--config", args.config, f"imagination.train.batch_size={args.batch}",
                f"imagination.train.horizon={args.horizon}", f"dynamics.generation.sampling_steps={args.k}"])
    torch.manual_seed(0)
    space = crafter_action_space()
    model = Dynamics(cfg.dynamics.model, space).eval()
    heads = AgentHeads(cfg.agent.heads, space.components, cfg.dynamics.model.agent_tokens,
                       cfg.dynamics.model.transformer.dim)
    trainer = ImaginationTrainer(model, heads, cfg.imagination.train, cfg.dynamics.generation, seed=0)
    b, c, h = args.batch, cfg.imagination.train.context, args.horizon
    z = torch.randn(b, c, cfg.dynamics.model.packed_tokens, cfg.dynamics.model.packed_dim)
    actions = torch.randint(17, (b, c, 1))
    future = torch.randint(17, (b, h, 1))
    generation = GenerationConfig(sampling_steps=args.k, context_noise=cfg.dynamics.generation.context_noise)
    t_rollout = best_of(args.repeats, lambda: rollout(model, generation, z, actions, future,
                                                      generator=torch.Generator().manual_seed(0)))
    t_imagine = best_of(args.repeats, lambda: trainer.imagine(z, actions))
    t_train = best_of(args.repeats, lambda: trainer.train_step(trainer.imagine(z, actions)))
    steps = b * h
    figures = {"imagined_steps_per_s": steps / t_imagine, "imagine_and_train_steps_per_s": steps / t_train,
               "baseline_rollout_steps_per_s": steps / t_rollout, "ratio_imagine_vs_rollout": t_rollout / t_imagine}
    print(f"imagine {figures['imagined_steps_per_s']:.1f} steps/s, with training "
          f"{figures['imagine_and_train_steps_per_s']:.1f}, plain rollout {figures['baseline_rollout_steps_per_s']:.1f}")
    print(json.dumps({"name": "imagination_throughput",
                      "config": {"file": args.config, "batch": b, "horizon": h, "k": args.k, "context": c,
                                 "dim": cfg.dynamics.model.transformer.dim,
                                 "depth": cfg.dynamics.model.transformer.depth,
                                 "threads": torch.get_num_threads()},
                      "device": f"cpu ({platform.processor() or platform.machine()})", "figures": figures,
                      "baseline": "rollout() of the same B x H frames from fixed actions"}))


if __name__ == "__main__":
    main()
