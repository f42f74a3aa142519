"""Live evaluation: the current policy plays real Crafter episodes; returns, achievements, score -> eval.json.

    summary = play_episodes(actor, make_env, episodes=20)            # any LiveActor (batch = envs played at once)
    summary = run_live_evaluation(cfg, tokenizer, dynamics, heads, version, run_dir, log, device)

play_episodes steps `actor.batch` envs together, each episode in its own LiveActor slot (rows): every step the
live slots' frames (n, H, W, 3) uint8 and the actions that produced them (n, A) go in, the next actions (n, A)
come out; a finished episode frees its slot for the next one until `episodes` have started. Env k of the batch
is CrafterEnv(seed = eval_seed(cfg) + k) and plays its episodes in that world sequence, so a rerun sees the same
worlds. Out: {"episodes", "mean_return", "std_return", "min_return", "max_return", "mean_length", "score",
"success_rates" {achievement: percent of episodes}, "returns", "lengths"}; run_live_evaluation adds
"policy_version", "argmax", "max_steps" and writes it to run_dir/eval.json and one metrics.jsonl line
(phase "eval": the scalars and success_<achievement>).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from system.envs.crafter_env import CrafterEnv
from system.envs.crafter_score import CrafterStats
from system.imagination.acting import LiveActor

EVAL_SEED_OFFSET = 2_000_003  # evaluation worlds: neither training (seed) nor held-out (seed + 1_000_003) ones


def eval_seed(seed: int) -> int:
    return seed + EVAL_SEED_OFFSET


@torch.no_grad()
def play_episodes(actor: LiveActor, make_env: Callable[[int], object], episodes: int) -> dict:
    n = actor.batch
    envs = [make_env(k) for k in range(min(n, episodes))]
    stats, started = CrafterStats(), 0
    frames: list = [None] * len(envs)
    last = np.full((len(envs), len(actor.policy.kinds)), -1, dtype=np.int64)
    starts = np.zeros(len(envs), dtype=bool)
    live = [False] * len(envs)
    for k, env in enumerate(envs):
        frames[k], _ = env.reset()
        live[k], starts[k] = True, True
        started += 1
    while any(live):
        rows = [k for k in range(len(envs)) if live[k]]
        actions = actor.step(torch.from_numpy(np.stack([frames[k] for k in rows])), torch.from_numpy(last[rows]),
                             torch.from_numpy(starts[rows]), rows=torch.tensor(rows)).cpu().numpy()
        for i, k in enumerate(rows):
            frames[k], _, terminated, truncated, info = envs[k].step(actions[i])
            last[k], starts[k] = actions[i], False
            if terminated or truncated:
                stats.add(info["episode"])
                if started < episodes:  # the slot's next episode
                    frames[k], _ = envs[k].reset()
                    last[k], starts[k] = -1, True
                    started += 1
                else:
                    live[k] = False
    summary = stats.summary()
    returns = np.array(stats.returns)
    summary.update(std_return=float(returns.std()), min_return=float(returns.min()), max_return=float(returns.max()),
                   returns=stats.returns, lengths=stats.lengths)
    return summary


def run_live_evaluation(cfg, tokenizer, dynamics, heads, version: int, run_dir: Path, log, device) -> dict | None:
    section = cfg.eval
    if section.episodes == 0:
        return None
    if cfg.env.name != "crafter":
        raise ValueError(f"eval.episodes = {section.episodes} with env.name = {cfg.env.name!r}: the live evaluator "
                         "plays Crafter only so far (set eval.episodes=0)")
    tokenizer.eval()
    dynamics.eval()
    heads.eval()
    actor = LiveActor(dynamics, heads.policy, cfg.dynamics.generation, batch=min(section.envs, section.episodes),
                      tokenizer=tokenizer, argmax=section.argmax,
                      generator=torch.Generator(device=device).manual_seed(eval_seed(cfg.seed)))

    def make_env(k: int) -> CrafterEnv:
        return CrafterEnv(size=tuple(cfg.data.ingest.size), seed=eval_seed(cfg.seed) + k,
                          max_episode_steps=section.max_steps)

    # One frame per episode per step is a tiny batch: on CPU, intra-op threads only add hand-offs (0.03 s vs
    # 0.6 s per smoke-size encode with 2 threads on a busy 2-core box), so acting runs on one thread.
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        summary = play_episodes(actor, make_env, section.episodes)
    finally:
        torch.set_num_threads(threads)
    summary.update(policy_version=int(version), argmax=section.argmax, max_steps=section.max_steps)
    Path(run_dir, "eval.json").write_text(json.dumps(summary, indent=1) + "\n")
    scalars = {k: summary[k] for k in ("episodes", "mean_return", "std_return", "min_return", "max_return",
                                       "mean_length", "score")}
    scalars.update({f"success_{name}": rate for name, rate in summary["success_rates"].items()})
    log.write("eval", version, scalars)
    return summary
