"""The live evaluation through the world-model service on Ray (the runtime path of system/phases/live_eval.py).

    summary = evaluate_through_service(cfg, tokenizer, dynamics, heads, version, run_dir, log)

The driver starts one WorldModelService actor (actors/world_model_service.py) built from the run's config
sections, sends it the trained weights through Ray's object store under `version`, and plays the evaluation
episodes with play_episodes through RemoteService: ActingService's interface over the actor, one remote `act`
per live episode sent together each step, so the actor batches them. Same seeds as the in-process path: with
arg-max actions both play the same episodes (tests). Out: the eval.json summary, as run_live_evaluation.
"""

from __future__ import annotations

from pathlib import Path

import ray

from actors.world_model_service import ServiceSpec, WorldModelService
from system.envs.action_space import crafter_action_space
from system.imagination.acting_service import ActRequest, ActResult
from system.phases.live_eval import crafter_eval_envs, eval_seed, play_episodes, write_evaluation
from system.runtime.ray_cluster import ray_session


EVAL_WAIT_MS = 10.0


class RemoteService:
    def __init__(self, handle):
        self.handle = handle

    def open_episode(self, seed: int | None = None) -> int:
        return ray.get(self.handle.open_episode.remote(seed))

    def close_episode(self, slot: int) -> None:
        ray.get(self.handle.close_episode.remote(slot))

    def act(self, requests: list[ActRequest]) -> list[ActResult]:
        refs = [self.handle.act.remote(r.slot, r.frame, r.last_action) for r in requests]
        return [ActResult(action, version, frame) for action, version, frame in ray.get(refs)]


def start_service(cfg, tokenizer, dynamics, heads, version: int, slots: int):
    """A service actor holding the given models' weights (moved to the CPU for the object store) as `version`."""
    if version < 1:
        raise ValueError(f"weights version {version}: the service starts at version 0 and takes versions >= 1")
    # a 10 ms window: a CPU step costs tens of ms, and separate env runners' requests do not arrive together
    # (docs/benchmarks.md, the world-model service and the evaluator); a full batch (every live env) closes at once
    spec = ServiceSpec(cfg.tokenizer.model, cfg.dynamics.model, cfg.agent.heads, crafter_action_space(),
                       cfg.dynamics.generation, slots=slots, max_batch=slots, max_wait_ms=EVAL_WAIT_MS,
                       argmax=cfg.eval.argmax, seed=eval_seed(cfg.seed), threads=1)
    service = WorldModelService.remote(spec)
    states = {name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
              for name, module in (("tokenizer", tokenizer), ("dynamics", dynamics), ("policy", heads.policy))}
    ray.get(service.set_weights.remote(int(version), ray.put(states)))
    return service


def evaluate_through_service(cfg, tokenizer, dynamics, heads, version: int, run_dir: Path, log) -> dict | None:
    section = cfg.eval
    if section.episodes == 0:
        return None
    make_env = crafter_eval_envs(cfg)
    with ray_session(num_cpus=cfg.runtime.num_cpus or None):
        service = start_service(cfg, tokenizer, dynamics, heads, version, slots=min(section.envs, section.episodes))
        try:
            video: list = []
            summary = play_episodes(RemoteService(service), make_env, section.episodes, section.envs, video=video,
                                    video_frames=section.video_frames)
        finally:
            ray.kill(service)
    return write_evaluation(cfg, summary, run_dir, log, version, video)
