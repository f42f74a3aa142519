"""What phase 3 changed in the policy, seen inside the world model: from the same held-out contexts and the same
noise and action draws, the phase-3 policy and its prior (the phase-2 BC policy) imagine rollouts; this prints
each one's imagined reward and how often it takes each Crafter action.

    PYTHONPATH=. python benchmarks/phase3_actions.py runs/crafter-cpu-seed2 [--contexts 32] [--horizon 16]

A policy that found real gains shifts toward the actions that earn reward in the game; one that exploits the
world model shifts toward actions the reward head pays for whatever the state (placing a table or a sapling
with nothing in the inventory earns nothing in Crafter). The last line is one JSON object: name, run, device,
figures (per policy: imagined reward per step and per rollout, share of steps above 0.5, action shares) and the
ratio of the phase-3 policy's imagined return to the prior's. Crafter runs with a finished phase 3 only.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from system.envs.action_space import CRAFTER_ACTIONS
from system.evaluate import held_out_windows, load_models
from system.phases.frames import frames_to_float
from system.run.config import load
from system.training.checkpoint import load_checkpoint
from system.training.imagination_trainer import ImaginationTrainer


def imagined_behaviour(run_dir: Path, contexts: int, horizon: int, seed: int) -> dict:
    cfg = load(["--config", str(run_dir / "config.yaml"), f"run_dir={run_dir}"])
    device = torch.device("cpu")
    models = load_models(cfg, run_dir, device)
    if "imagination" not in models:
        raise SystemExit(f"{run_dir}: no checkpoints/imagination.pt (phase 3 has not finished)")
    dynamics, heads = models["imagination"]
    trainer = ImaginationTrainer(dynamics, heads, cfg.imagination.train, cfg.dynamics.generation, seed=seed)
    trainer.prior.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "imagination.pt", device)["prior"])
    c = cfg.imagination.train.context
    frames, actions = held_out_windows(cfg, contexts, c, seed=seed)
    with torch.no_grad():
        z = dynamics.pack(models["tokenizer"].encode(frames_to_float(frames, device)))
    context_actions = torch.from_numpy(actions).long()
    figures = {}
    for name, policy in (("phase3", None), ("prior", trainer.prior)):
        trainer.generator.manual_seed(seed + 11)   # the same noise and action draws for both
        with torch.no_grad():
            traj = trainer.imagine(z, context_actions, policy=policy, horizon=horizon)
        taken = traj.actions[..., 0].reshape(-1)   # Crafter: one action component
        shares = np.bincount(taken, minlength=len(CRAFTER_ACTIONS)) / taken.size
        figures[name] = {"reward_per_step": float(traj.rewards.mean()),
                         "return_per_rollout": float(traj.rewards.sum(1).mean()),
                         "steps_above_half": float((traj.rewards > 0.5).mean()),
                         "action_shares": dict(zip(CRAFTER_ACTIONS, map(float, shares)))}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--contexts", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    figures = imagined_behaviour(args.run_dir, args.contexts, args.horizon, args.seed)
    print(f"{'action':20s} {'phase 3':>8s} {'prior':>8s}")
    for action in CRAFTER_ACTIONS:
        shares = [figures[name]["action_shares"][action] for name in ("phase3", "prior")]
        if max(shares) > 0:
            print(f"{action:20s} {shares[0]:8.3f} {shares[1]:8.3f}")
    for name in ("phase3", "prior"):
        f = figures[name]
        print(f"{name}: imagined reward {f['reward_per_step']:.3f}/step, {f['return_per_rollout']:.3f}/rollout, "
              f"{f['steps_above_half']:.3f} of steps above 0.5")
    print(json.dumps({"name": "phase3_actions", "run": str(args.run_dir),
                      "config": {"contexts": args.contexts, "horizon": args.horizon, "seed": args.seed},
                      "device": f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)", "figures": figures,
                      "ratio": {"imagined_return_phase3_over_prior": figures["phase3"]["return_per_rollout"]
                                / max(figures["prior"]["return_per_rollout"], 1e-9)}}))


if __name__ == "__main__":
    main()
