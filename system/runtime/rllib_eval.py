"""The live evaluation through an RLlib EnvRunnerGroup with the world-model service in the loop (eval.backend=rllib).

    summary = evaluate_with_rllib(cfg, tokenizer, dynamics, heads, version, run_dir, log)
    live_eval = PeriodicRllibEvaluator(cfg, tokenizer, dynamics, heads, run_dir, log)  # phase 3, eval.every

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
evaluation fails, naming the runners. Nothing is written to the replay store. Out: the eval.json summary
(write_evaluation, same format as the other backends); the start-up time (service and runners ready), the play
time and the runner restarts are printed.
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


PLAY_TAG = "eval_quota"


class QuotaPlay:
    """One evaluation on a runner group, played without blocking the caller: start() sends every runner its
    quota (play_quota), poll() collects the runners that answered and sends a lost runner its quota again once
    Ray has restarted it (the results of a lost life are never seen; its env starts over from the first world).
    RuntimeError, naming the runners, after more than `max_restarts` losses or when a lost runner is not back
    within `restore_timeout_s`. fresh_envs: each runner builds its env anew first, so a group that has played
    before starts from its first world again."""

    def __init__(self, group, quotas: list[int], video_frames: int, max_restarts: int, fresh_envs: bool = False,
                 restore_timeout_s: float = 120.0):
        self.group, self.quotas, self.max_restarts, self.restore_timeout_s = group, quotas, max_restarts, \
            restore_timeout_s
        self.play = partial(play_quota, quotas=quotas, video_frames=video_frames, fresh_env=fresh_envs)
        self.results: dict[int, dict] = {}
        self.playing: set[int] = set()      # runners with a request out
        self.lost: set[int] = set()         # runners waiting for their restart
        self.losses, self.lost_since = 0, 0.0

    def start(self) -> "QuotaPlay":
        self._send(list(range(1, len(self.quotas) + 1)))
        return self

    def _send(self, runners: list[int]) -> None:
        self.group.foreach_env_runner_async(self.play, tag=PLAY_TAG, remote_worker_ids=runners)
        self.playing |= set(runners)

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.quotas)

    def poll(self, timeout_s: float = 0.0) -> bool:
        """Collects what is ready (waiting up to timeout_s); True when every runner has answered."""
        for _, result in self.group.fetch_ready_async_reqs(tags=PLAY_TAG, timeout_seconds=timeout_s):
            self.results[result["runner"]] = result
            self.playing.discard(result["runner"])
        healthy = set(self.group.healthy_env_runner_ids())
        newly_lost = sorted(self.playing - healthy)    # their request failed: RLlib took them out of service
        if newly_lost:
            self.playing -= set(newly_lost)
            self.lost |= set(newly_lost)
            self.losses += len(newly_lost)
            self.lost_since = time.monotonic()
            if self.losses > self.max_restarts:
                raise RuntimeError(f"eval env runners {newly_lost} were lost; {self.losses} losses in all exceed "
                                   f"eval.max_runner_restarts = {self.max_restarts}")
            print(f"eval (rllib): env runners {newly_lost} lost; waiting for Ray to restart them, then replaying "
                  "their worlds", flush=True)
        if self.lost:
            self.group.probe_unhealthy_env_runners(timeout_seconds=min(5.0, max(timeout_s, 0.5)))
            back = sorted(self.lost & set(self.group.healthy_env_runner_ids()))
            self.lost -= set(back)
            if back:
                self._send(back)
            elif time.monotonic() - self.lost_since > self.restore_timeout_s:
                raise RuntimeError(f"eval env runners {sorted(self.lost)} were lost and not restarted within "
                                   f"{self.restore_timeout_s:.0f} s")
        return self.done

    def wait(self) -> list[dict]:
        """Blocks until every runner has answered; the results in runner order."""
        while not self.poll(timeout_s=1.0):
            pass
        return [self.results[runner] for runner in range(1, len(self.quotas) + 1)]


def play_quotas(group, quotas: list[int], video_frames: int, max_restarts: int, fresh_envs: bool = False,
                restore_timeout_s: float = 120.0) -> list[dict]:
    """QuotaPlay to the end: play_quota's results of every runner, in runner order."""
    return QuotaPlay(group, quotas, video_frames, max_restarts, fresh_envs, restore_timeout_s).start().wait()


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
    """Phase 3's live evaluations along the way (eval.every, eval.backend=rllib), played beside training: one
    world-model service and one EnvRunnerGroup kept for the whole phase, started at the first evaluation.

        live_eval = PeriodicRllibEvaluator(cfg, tokenizer, dynamics, heads, run_dir, log)
        live_eval(version)   # sends the policy's weights as `version`, starts the episodes, returns at once
        live_eval.poll()     # every update: writes a finished evaluation (phase "live_eval", step = its version)
        live_eval.finish()   # end of the phase: waits for the one still playing; close() stops the actors

    Each evaluation sends the policy head's current weights to the service as its version (the tokenizer and
    dynamics stay those of the start: phase 3 does not train them unless imagination.train.full_finetune, where
    they are sent too) and has every runner build its env afresh, so each evaluation plays the same
    eval.periodic_episodes worlds as play_episodes does in the driver (tests). An evaluation that comes due while
    the previous one still plays is skipped, with a line saying so: the runners play one at a time, and the
    service holds one version. Logged with the video, no eval.json."""

    def __init__(self, cfg, tokenizer, dynamics, heads, run_dir: Path, log):
        self.cfg, self.tokenizer, self.dynamics, self.heads = cfg, tokenizer, dynamics, heads
        self.run_dir, self.log = run_dir, log
        self.runners = min(cfg.eval.envs, cfg.eval.periodic_episodes)
        self.quotas = [quota(k, cfg.eval.periodic_episodes, self.runners) for k in range(self.runners)]
        self.service = self.group = self.playing = None
        self.version, self.started = 0, 0.0

    def __call__(self, version: int) -> bool:
        """Starts the evaluation of `version`; False if the previous one is still playing (this one is skipped)."""
        self.poll()
        if not self.runners:
            return False
        if self.playing is not None:
            print(f"live_eval (rllib): version {version} skipped, version {self.version} is still playing",
                  flush=True)
            return False
        self.started = time.perf_counter()
        if self.service is None:
            self.service = start_service(self.cfg, self.tokenizer, self.dynamics, self.heads, version,
                                         slots=self.runners)
            self.group = runner_group(self.cfg, self.service, self.runners)
        else:
            parts = {"policy": self.heads.policy}
            if self.cfg.imagination.train.full_finetune:
                parts["dynamics"] = self.dynamics
            states = {name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
                      for name, module in parts.items()}
            ray.get(self.service.set_weights.remote(int(version), ray.put(states)))
        self.version = version
        self.playing = QuotaPlay(self.group, self.quotas, self.cfg.eval.video_frames,
                                 self.cfg.eval.max_runner_restarts, fresh_envs=True).start()
        return True

    def poll(self, timeout_s: float = 0.0) -> dict | None:
        """The summary of the evaluation that finished now (written to the log), else None."""
        if self.playing is None or not self.playing.poll(timeout_s):
            return None
        results = [self.playing.results[runner] for runner in range(1, self.runners + 1)]
        self.playing = None
        summary, video = summarize_runners(results, self.quotas, eval_seed(self.cfg.seed))
        print(f"live_eval (rllib): version {self.version}, {summary['episodes']} episodes in "
              f"{time.perf_counter() - self.started:.1f} s, return {summary['mean_return']:.2f}", flush=True)
        return write_evaluation(self.cfg, summary, self.run_dir, self.log, self.version, video, phase="live_eval")

    def finish(self) -> dict | None:
        """Waits for the evaluation still playing, if any, and writes it."""
        while self.playing is not None:
            summary = self.poll(timeout_s=1.0)
            if summary is not None:
                return summary
        return None

    def close(self) -> None:
        if self.group is not None:
            self.group.stop()
        if self.service is not None:
            ray.kill(self.service)
        self.service = self.group = self.playing = None


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
