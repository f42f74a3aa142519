"""Env runner actor: RLlib's SingleAgentEnvRunner steps a vector of Crafter envs; fragments become replay chunks.

    runner = CrafterEnvRunner.options(max_restarts=-1).remote(EnvRunnerSpec(...), replay_cfg)
    report = ray.get(runner.collect.remote(num_env_steps=256))   # {"chunks": [(episode_id, offset, steps)],
                                                                 #  "returns": [finished episodes' returns], ...}

RLlib does the stepping, autoreset and episode bookkeeping (new API stack). The spec names the module that acts:
`policy="uniform"` (no policy yet: actors/behavior_module.py) or `policy="service"` with `service=` a
WorldModelService handle (actors/service_policy_module.py: every action comes from the service, which holds the
weights; the module's episode state is a (slot, frame) handle). Each `collect` samples about
`num_env_steps` steps over all sub-envs, turns every returned episode fragment into one chunk
(system/data/fragment_chunks.py) and writes them with one `add_many` to the table before it answers: what the
report lists is stored. A crash loses only the fragments of the call in flight; the restarted actor starts
fresh episodes with fresh seeds (chunks of a cut episode stay in the store without `is_last`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.tune.registry import register_env

from actors.behavior_module import UniformActionModule
from actors.previous_action_connector import PreviousActionToBatch
from actors.service_policy_module import ServicePolicyModule
from system.data.fragment_chunks import fragment_to_chunk
from system.envs.crafter_env import CrafterEnv
from system.replay import make_store

ENV_NAME = "dreamer4-crafter"
POLICIES = ("uniform", "service")


@dataclass(frozen=True)
class EnvRunnerSpec:
    index: int                     # runner number: part of episode ids and seeds
    table: str = "real"
    envs: int = 2                  # sub-envs stepped together by one runner
    size: tuple[int, int] = (64, 64)
    max_episode_steps: int = 200
    seed: int = 0
    policy: str = "uniform"        # "uniform" (no policy yet) or "service" (acts through the world-model service)
    service: Any = None            # the WorldModelService actor handle, with policy="service"

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"env runner policy {self.policy!r}: expected one of {POLICIES}")
        if (self.policy == "service") != (self.service is not None):
            raise ValueError(f"env runner policy {self.policy!r} with service={self.service!r}: the service "
                             "policy needs a WorldModelService handle, and only it takes one")


def _make_crafter(env_config) -> CrafterEnv:
    return CrafterEnv(size=tuple(env_config["size"]), seed=env_config["seed"],
                      max_episode_steps=env_config["max_episode_steps"])


class _BehaviorConfig(AlgorithmConfig):
    """An AlgorithmConfig with no algorithm: it only tells the env runner which module acts."""

    def get_default_rl_module_spec(self):
        return RLModuleSpec(module_class=UniformActionModule)


def _behavior_config(spec: EnvRunnerSpec, seed: int) -> AlgorithmConfig:
    config = _BehaviorConfig().environment(ENV_NAME, env_config={"size": list(spec.size), "seed": seed,
                                                                "max_episode_steps": spec.max_episode_steps})
    config = config.env_runners(num_envs_per_env_runner=spec.envs, num_cpus_per_env_runner=0).debugging(seed=seed)
    if spec.policy == "uniform":
        return config.rl_module(model_config={"seed": seed})
    return (config.rl_module(rl_module_spec=RLModuleSpec(module_class=ServicePolicyModule,
                                                         model_config={"service": spec.service, "seed": seed,
                                                                       "owner": f"r{spec.index}"}))
            .env_runners(env_to_module_connector=lambda env, spaces, device: PreviousActionToBatch()))


class CrafterEnvRunnerShell:
    def __init__(self, spec: EnvRunnerSpec, replay_cfg):
        register_env(ENV_NAME, _make_crafter)
        # A restarted actor must not replay the worlds and actions of its previous life: fresh entropy then.
        # (Built in the driver, as tests do to read the episodes, it is no actor and never restarted.)
        context = ray.get_runtime_context() if ray.is_initialized() else None
        restarted = bool(context and context.get_actor_id() and context.was_current_actor_reconstructed)
        seed = int(np.random.SeedSequence([spec.seed, spec.index, os.getpid() if restarted else 0])
                   .generate_state(1)[0] % 2**30)
        self.spec, self.seed = spec, seed
        self.runner = SingleAgentEnvRunner(config=_behavior_config(spec, seed), worker_index=0)
        self.action_classes = tuple(int(n) for n in self.runner.env.single_action_space.nvec)
        self.store = make_store(replay_cfg, seed=seed)
        self.env_steps = 0
        self.partial_returns: dict[str, float] = {}  # episode id -> rewards so far, for episodes cut by calls

    def pid(self) -> int:
        return os.getpid()

    def collect(self, num_env_steps: int) -> dict:
        fragments = self.runner.sample(num_timesteps=num_env_steps, random_actions=False)
        chunks = [fragment_to_chunk(f.get_observations(), f.get_actions(), f.get_rewards(), f.t_started,
                                    f.is_terminated, f.is_done, f"crafter/rllib/r{self.spec.index}/{f.id_}",
                                    self.action_classes) for f in fragments if len(f) > 0]
        self.store.add_many(self.spec.table, chunks)
        steps = sum(len(f) for f in fragments)
        self.env_steps += steps
        returns = []  # of the episodes that ended in this call, over all their fragments
        for f in fragments:
            self.partial_returns[f.id_] = self.partial_returns.get(f.id_, 0.0) + float(np.sum(f.get_rewards()))
            if f.is_done:
                returns.append(self.partial_returns.pop(f.id_))
        return {"env_steps": steps, "chunks": [(c.episode_id, c.step_offset, len(c.frames)) for c in chunks],
                "episodes_done": sum(bool(f.is_done) for f in fragments), "returns": returns}

    def act_latencies(self) -> list[float]:
        """Seconds per module forward spent waiting for the service (empty for the uniform module)."""
        return list(getattr(self.runner.module, "latencies_s", []))

    def release(self) -> None:
        """Frees the service slots of the unfinished episodes (call before killing a runner that acts
        through the service)."""
        if isinstance(self.runner.module, ServicePolicyModule):
            self.runner.module.release()


CrafterEnvRunner = ray.remote(num_cpus=0)(CrafterEnvRunnerShell)
