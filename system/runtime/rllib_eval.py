"""The live evaluation through an RLlib EnvRunnerGroup with the world-model service in the loop (eval.backend=rllib).

    summary = evaluate_with_rllib(cfg, tokenizer, dynamics, heads, version, run_dir, log)

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


def play_quotas(group, quotas: list[int], video_frames: int, max_restarts: int,
                restore_timeout_s: float = 120.0) -> list[dict]:
    """play_quota on every runner of `group`, in runner order; a runner lost on the way is restarted by Ray and
    plays its quota again (the results of a lost life are never seen). RuntimeError, naming the runners, after
    more than `max_restarts` losses or when a lost runner is not back within `restore_timeout_s`."""
    play = partial(play_quota, quotas=quotas, video_frames=video_frames)
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


def play_with_rllib(cfg, service, runners: int, episodes: int, video_frames: int = 0) -> tuple[dict, list, dict]:
    """(summary, video frames, timings {"startup_s", "play_s", "restarts"}) of `episodes` episodes on `runners`
    env runners acting through `service`."""
    start = time.perf_counter()
    base = eval_seed(cfg.seed)
    group = eval_runner_group(EvalRunnersSpec(service=service, runners=runners, size=tuple(cfg.data.ingest.size),
                                              max_steps=cfg.eval.max_steps, seed=base),
                              max_restarts=cfg.eval.max_runner_restarts)
    try:
        ready = time.perf_counter()
        quotas = [quota(k, episodes, runners) for k in range(runners)]
        results = play_quotas(group, quotas, video_frames, cfg.eval.max_runner_restarts)
        played = time.perf_counter()
        restarts = group.num_remote_worker_restarts()
    finally:
        group.stop()
    finished, version = {}, 0
    for k, result in enumerate(results):   # in runner order: runner k + 1 played env k
        worlds = [episode["world"] for episode in result["episodes"]]
        if worlds != [[base + k, j] for j in range(quotas[k])]:
            raise RuntimeError(f"eval env runner {k + 1} played worlds {worlds}; the split gives it worlds "
                               f"{[[base + k, j] for j in range(quotas[k])]} (RLlib's env seeding changed?)")
        for j, episode in enumerate(result["episodes"]):
            finished[k, j] = episode
        version = max(version, result["version"])
    video = list(results[0]["frames"]) if results and results[0]["frames"] is not None else []
    return summarize(finished, runners, version), video, {"startup_s": ready - start, "play_s": played - ready,
                                                          "restarts": restarts}


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
