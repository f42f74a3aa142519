"""Live evaluation: the current policy plays real Crafter episodes; returns, achievements, score -> eval.json.

    summary = play_episodes(service, make_env, episodes=20, envs=4)
    summary = run_live_evaluation(cfg, tokenizer, dynamics, heads, version, run_dir, log, device)

`service` is an ActingService (system/imagination/acting_service.py, in this process) or anything with its
methods open_episode(seed) -> slot, act([ActRequest]) -> [ActResult], close_episode(slot): the world-model
service actor behind system/runtime/service_eval.py. `envs` episodes run at once, each in its own slot: every
step the live episodes' frames (H, W, 3) uint8 and the actions that produced them (A,) go in as one act batch,
their next actions come out; a finished episode frees its slot.

Which episodes: episode i (0 <= i < episodes) is env i % envs's (i // envs)-th, so env k plays the first
quota(k) = len(range(k, episodes, envs)) worlds of its sequence and then stops, however long its or the other
envs' episodes last: the set of episodes is fixed before any is played (counting the first ones to finish
would favour short episodes), and the RLlib evaluator (system/runtime/rllib_eval.py) plays the same set with
one env runner per env. Env k is CrafterEnv(seed = eval_seed(cfg.seed) + k), and an episode's context noise is
seeded by its world alone (world_noise_seed of the env's info["world"]), so with arg-max actions every path
plays the same episodes. Out (episodes in the order i): {"episodes", "mean_return", "std_return",
"min_return", "max_return", "mean_length", "score", "success_rates" {achievement: percent of episodes},
"returns", "lengths", "policy_version" (the weights version that chose the last action)}; write_evaluation adds
the settings, writes run_dir/eval.json and one metrics.jsonl line (phase "eval": the scalars and
success_<achievement>).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from system.envs.crafter_env import CrafterEnv
from system.envs.crafter_score import CrafterStats
from system.imagination.acting_service import ActingService, ActRequest, world_noise_seed
from system.run.media import write_video

EVAL_SEED_OFFSET = 2_000_003  # evaluation worlds: neither training (seed) nor held-out (seed + 1_000_003) ones


def eval_seed(seed: int) -> int:
    return seed + EVAL_SEED_OFFSET


def quota(k: int, episodes: int, envs: int) -> int:
    """Episodes env k plays: those i < episodes with i % envs == k."""
    return len(range(k, episodes, envs))


def summarize(finished: dict[tuple[int, int], dict], envs: int, version: int) -> dict:
    """finished: (env k, its j-th episode) -> info["episode"] ({return, length, achievements}) -> the summary,
    episodes in the order i = j * envs + k."""
    stats = CrafterStats()
    for k, j in sorted(finished, key=lambda kj: kj[1] * envs + kj[0]):
        stats.add(finished[k, j])
    summary = stats.summary()
    returns = np.array(stats.returns)
    summary.update(std_return=float(returns.std()), min_return=float(returns.min()), max_return=float(returns.max()),
                   returns=stats.returns, lengths=stats.lengths, policy_version=version)
    return summary


def play_episodes(service, make_env: Callable[[int], CrafterEnv], episodes: int, envs: int,
                  video: list | None = None, video_frames: int = 0) -> dict:
    """Plays `episodes` live episodes; the first `video_frames` frames (H, W, 3) uint8 of episode 0 (env 0's
    first) are appended to `video` when it is given."""
    envs = [make_env(k) for k in range(min(envs, episodes))]
    n = len(envs)
    finished: dict[tuple[int, int], dict] = {}
    played, version = [0] * n, 0
    frames, slots, last = [None] * n, [None] * n, [None] * n

    def record(k: int) -> None:
        if video is not None and k == 0 and played[0] == 0 and len(video) < video_frames:
            video.append(frames[k])

    def start(k: int) -> None:
        frames[k], info = envs[k].reset()
        slots[k] = service.open_episode(seed=world_noise_seed(info["world"]))
        last[k] = np.full(len(envs[k].action_spec.components), -1, dtype=np.int64)
        record(k)

    for k in range(n):
        start(k)
    while any(slot is not None for slot in slots):
        live = [k for k in range(n) if slots[k] is not None]
        results = service.act([ActRequest(slots[k], frames[k], last[k]) for k in live])
        for k, result in zip(live, results):
            frames[k], _, terminated, truncated, info = envs[k].step(result.action)
            record(k)
            last[k], version = result.action, max(version, result.version)
            if terminated or truncated:
                finished[k, played[k]] = info["episode"]
                played[k] += 1
                service.close_episode(slots[k])
                slots[k] = None
                if played[k] < quota(k, episodes, n):  # this env's next world
                    start(k)
    return summarize(finished, n, version)


def crafter_eval_envs(cfg) -> Callable[[int], CrafterEnv]:
    if cfg.env.name != "crafter":
        raise ValueError(f"eval.episodes = {cfg.eval.episodes} with env.name = {cfg.env.name!r}: the live evaluator "
                         "plays Crafter only so far (set eval.episodes=0)")
    return lambda k: CrafterEnv(size=tuple(cfg.data.ingest.size), seed=eval_seed(cfg.seed) + k,
                                max_episode_steps=cfg.eval.max_steps)


def write_evaluation(cfg, summary: dict, run_dir: Path, log, step: int, video: list | None = None,
                     phase: str = "eval") -> dict:
    """Phase "eval" (the final one): eval.json, a metrics line and the video; "live_eval" (during phase 3):
    the metrics line and the video."""
    summary.update(argmax=cfg.eval.argmax, max_steps=cfg.eval.max_steps)
    if phase == "eval":
        Path(run_dir, "eval.json").write_text(json.dumps(summary, indent=1) + "\n")
    scalars = {k: summary[k] for k in ("episodes", "mean_return", "std_return", "min_return", "max_return",
                                       "mean_length", "score", "policy_version")}
    scalars.update({f"success_{name}": rate for name, rate in summary["success_rates"].items()})
    log.write(phase, step, scalars)
    if video:
        path = write_video(Path(run_dir) / "videos" / f"{phase}_policy_v{step}.mp4", np.stack(video), fps=10)
        log.media(phase, step, "episode", path)
    return summary


class InDriverLiveEval:
    """Phase 3's live evaluations in this process (eval.every): each plays eval.periodic_episodes episodes at
    once, phase "live_eval"; poll and finish have nothing to wait for (the interface of the RLlib evaluator,
    system/runtime/rllib_eval.py's PeriodicRllibEvaluator, which plays beside training)."""

    def __init__(self, cfg, tokenizer, dynamics, heads, run_dir: Path, log, device):
        self.cfg, self.tokenizer, self.dynamics, self.heads = cfg, tokenizer, dynamics, heads
        self.run_dir, self.log, self.device = run_dir, log, device

    def __call__(self, version: int) -> bool:
        run_live_evaluation(self.cfg, self.tokenizer, self.dynamics, self.heads, version, self.run_dir, self.log,
                            self.device, episodes=self.cfg.eval.periodic_episodes, phase="live_eval")
        return True

    def poll(self) -> None:
        return None

    def finish(self) -> None:
        return None


def run_live_evaluation(cfg, tokenizer, dynamics, heads, version: int, run_dir: Path, log, device,
                        episodes: int | None = None, phase: str = "eval") -> dict | None:
    """In this process: an ActingService over the given models, weights version `version`; `episodes`
    (default eval.episodes) live episodes, logged as `phase` (write_evaluation)."""
    section = cfg.eval
    episodes = section.episodes if episodes is None else episodes
    if episodes == 0:
        return None
    make_env = crafter_eval_envs(cfg)
    service = ActingService(tokenizer, dynamics, heads.policy, cfg.dynamics.generation,
                            slots=min(section.envs, episodes), argmax=section.argmax, seed=eval_seed(cfg.seed))
    service.version = int(version)  # the models are already loaded: name their version without a reload
    # One frame per episode per step is a tiny batch: on CPU, intra-op threads only add hand-offs (0.03 s vs
    # 0.6 s per smoke-size encode with 2 threads on a busy 2-core box), so acting runs on one thread.
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    video: list = []
    training = [module.training for module in (tokenizer, dynamics, heads)]
    for module in (tokenizer, dynamics, heads):
        module.eval()
    try:
        summary = play_episodes(service, make_env, episodes, section.envs, video=video,
                                video_frames=section.video_frames)
    finally:
        torch.set_num_threads(threads)
        for module, mode in zip((tokenizer, dynamics, heads), training):  # mid-phase: training continues after
            module.train(mode)
    return write_evaluation(cfg, summary, run_dir, log, version, video, phase)
