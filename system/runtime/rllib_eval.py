"""The live evaluation through an RLlib EnvRunnerGroup with the world-model service in the loop (eval.backend=rllib).

    summary = evaluate_with_rllib(cfg, tokenizer, dynamics, heads, version, run_dir, log)
    periodic = PeriodicRllibEvaluator(cfg, tokenizer, dynamics, heads)   # phase 3, every eval.every updates
    periodic(version, run_dir, log);  periodic.close()

The driver starts one WorldModelService actor holding the trained weights as `version` (system/runtime/
service_eval.py's start_service), then an EnvRunnerGroup of R = min(eval.envs, eval.episodes) env runners
(actors/eval_env_runners.py), one Crafter env each, whose ServicePolicyModule asks the service for every action.
Each runner plays its env's quota of the play_episodes split (episode i is env i % R's (i // R)-th world) in one
`sample(num_episodes=...)` call, all runners at once; the episodes' returns, lengths and achievements come back
from the env's infos, and the video is episode 0's frames. With arg-max actions this plays the episodes
play_episodes plays in the driver (the same worlds, the same per-world noise seeds; tests). Every episode's world
is checked against the split, so a change in RLlib's seeding fails here, naming the world. A runner lost while
playing (its process killed, its node gone) is restarted by Ray and plays its whole quota again from its first
world, so the summary is the one an undisturbed evaluation writes; after `max_restarts` losses in all the
evaluation fails, naming the runners. Nothing is written to the replay store. Out: the eval.json summary (write_evaluation, same format as the other backends); the start-up
time (service and runners ready) and the play time are printed.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np
import ray

from actors.eval_env_runners import EvalRunnersSpec, eval_runner_group, play_quota
from system.phases.live_eval import crafter_eval_envs, eval_seed, quota, summarize, write_evaluation
from system.runtime.ray_cluster import ray_session
from system.runtime.service_eval import start_service


def play_quotas(group, quotas: list[int], video_frames: int, max_restarts: int, fresh_envs: bool = False,
                restore_timeout_s: float = 120.0) -> list[dict]:
    """play_quota on every runner of `group`, in runner order; a runner lost on the way is restarted by Ray and
    plays its quota again (the results of a lost life are never seen). RuntimeError, naming the runners, after
    more than `max_restarts` losses or when a lost runner is not back within `restore_timeout_s`. fresh_envs:
    each runner builds its env anew first, so a group that has played before starts from its first world."""
    play = partial(play_quota, quotas=quotas, video_frames=video_frames, fresh_env=fresh_envs)
    results, lost = {}, 0
    todo = list(range(1, len(quotas) + 1))
    while todo:
        for result in group.foreach_env_runner(play, local_env_runner=False, remote_worker_ids=todo):
            results[result["runner"]] = result
        todo = [runner for runner in todo if runner not in results]
        if not todo:
            break
        lost += len(todo)
        if lost > max_restarts:
            raise RuntimeError(f"eval env runners {todo} were lost; {lost} losses in all exceed "
                               f"eval.max_runner_restarts = {max_restarts}")
        print(f"eval (rllib): env runners {todo} lost; waiting for Ray to restart them, then replaying their "
              "worlds", flush=True)
        deadline = time.monotonic() + restore_timeout_s
        while not set(todo) <= set(group.healthy_env_runner_ids()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"eval env runners {sorted(set(todo) - set(group.healthy_env_runner_ids()))} "
                                   f"were lost and not restarted within {restore_timeout_s:.0f} s")
            group.probe_unhealthy_env_runners(timeout_seconds=5.0)
    return [results[runner] for runner in range(1, len(quotas) + 1)]


def summarize_runners(results: list[dict], quotas: list[int], base: int) -> tuple[dict, list]:
    """(summary, video frames) of play_quota's results in runner order; every episode's world is checked against
    the split (runner k + 1 plays env k's worlds base + k, from its first)."""
    finished, version = {}, 0
    for k, result in enumerate(results):
        worlds = [episode["world"] for episode in result["episodes"]]
        if worlds != [[base + k, j] for j in range(quotas[k])]:
            raise RuntimeError(f"eval env runner {k + 1} played worlds {worlds}; the split gives it worlds "
                               f"{[[base + k, j] for j in range(quotas[k])]} (RLlib's env seeding changed?)")
        for j, episode in enumerate(result["episodes"]):
            finished[k, j] = episode
        version = max(version, result["version"])
    video = list(results[0]["frames"]) if results and results[0]["frames"] is not None else []
    return summarize(finished, len(results), version), video


def runner_group(cfg, service, runners: int):
    return eval_runner_group(EvalRunnersSpec(service=service, runners=runners, size=tuple(cfg.data.ingest.size),
                                             max_steps=cfg.eval.max_steps, seed=eval_seed(cfg.seed)),
                             max_restarts=cfg.eval.max_runner_restarts)


def play_with_rllib(cfg, service, runners: int, episodes: int, video_frames: int = 0) -> tuple[dict, list, dict]:
    """(summary, video frames, timings {"startup_s", "play_s", "restarts"}) of `episodes` episodes on `runners`
    env runners acting through `service`."""
    start = time.perf_counter()
    group = runner_group(cfg, service, runners)
    try:
        ready = time.perf_counter()
        quotas = [quota(k, episodes, runners) for k in range(runners)]
        results = play_quotas(group, quotas, video_frames, cfg.eval.max_runner_restarts)
        played = time.perf_counter()
        restarts = group.num_remote_worker_restarts()
    finally:
        group.stop()
    summary, video = summarize_runners(results, quotas, eval_seed(cfg.seed))
    return summary, video, {"startup_s": ready - start, "play_s": played - ready, "restarts": restarts}


class PeriodicRllibEvaluator:
    """Phase 3's live evaluations along the way (eval.every, eval.backend=rllib): one world-model service and one
    EnvRunnerGroup kept for the whole phase, started at the first evaluation. Each call sends the policy head's
    current weights to the service as `version` (the other parts stay those of the start) and has every runner
    build its env afresh, so each evaluation plays the same eval.periodic_episodes worlds as play_episodes does
    in the driver (tests). Logged as phase "live_eval" with the video, no eval.json."""

    def __init__(self, cfg, tokenizer, dynamics, heads):
        self.cfg, self.tokenizer, self.dynamics, self.heads = cfg, tokenizer, dynamics, heads
        self.runners = min(cfg.eval.envs, cfg.eval.periodic_episodes)
        self.quotas = [quota(k, cfg.eval.periodic_episodes, self.runners) for k in range(self.runners)]
        self.service = self.group = None

    def __call__(self, version: int, run_dir: Path, log) -> dict | None:
        if not self.runners:
            return None
        start = time.perf_counter()
        if self.service is None:
            self.service = start_service(self.cfg, self.tokenizer, self.dynamics, self.heads, version,
                                         slots=self.runners)
            self.group = runner_group(self.cfg, self.service, self.runners)
        else:
            policy = {k: v.detach().cpu() for k, v in self.heads.policy.state_dict().items()}
            ray.get(self.service.set_weights.remote(int(version), ray.put({"policy": policy})))
        results = play_quotas(self.group, self.quotas, self.cfg.eval.video_frames, self.cfg.eval.max_runner_restarts,
                              fresh_envs=True)
        summary, video = summarize_runners(results, self.quotas, eval_seed(self.cfg.seed))
        print(f"live_eval (rllib): version {version}, {summary['episodes']} episodes in "
              f"{time.perf_counter() - start:.1f} s, return {summary['mean_return']:.2f}", flush=True)
        return write_evaluation(self.cfg, summary, run_dir, log, version, video, phase="live_eval")

    def close(self) -> None:
        if self.group is not None:
            self.group.stop()
        if self.service is not None:
            ray.kill(self.service)
        self.service = self.group = None


def evaluate_with_rllib(cfg, tokenizer, dynamics, heads, version: int, run_dir: Path, log) -> dict | None:
    section = cfg.eval
    if section.episodes == 0:
        return None
    crafter_eval_envs(cfg)  # Crafter only so far: says so by name otherwise
    runners = min(section.envs, section.episodes)
    with ray_session(num_cpus=cfg.runtime.num_cpus or None):
        start = time.perf_counter()
        service = start_service(cfg, tokenizer, dynamics, heads, version, slots=runners)
        service_s = time.perf_counter() - start
        try:
            summary, video, timing = play_with_rllib(cfg, service, runners, section.episodes, section.video_frames)
        finally:
            ray.kill(service)
    steps = int(np.sum(summary["lengths"]))
    print(f"eval (rllib): service ready in {service_s:.1f} s, {runners} env runners in {timing['startup_s']:.1f} s, "
          f"{summary['episodes']} episodes ({steps} env steps) in {timing['play_s']:.1f} s, "
          f"{timing['restarts']} runner restarts", flush=True)
    return write_evaluation(cfg, summary, run_dir, log, version, video)
