"""The evaluator's env runners: an RLlib EnvRunnerGroup of SingleAgentEnvRunners, one Crafter env each, acting
through the world-model service (actors/service_policy_module.py).

    group = eval_runner_group(EvalRunnersSpec(service=handle, runners=4, size=(64, 64), max_steps=100, seed=s))
    played = group.foreach_env_runner(partial(play_quota, quotas=[2, 1, 1, 1], video_frames=300),
                                      local_env_runner=False)   # one dict per runner, in runner order

Runner r (RLlib's worker_index, 1..R) steps env k = r - 1. RLlib seeds its first reset with config.seed +
worker_index (EnvRunner), so with config.seed = s - 1 env k plays CrafterEnv's world sequence s + k from its
first world on: the worlds play_episodes gives env k (system/phases/live_eval.py). `play_quota` has the runner
sample quotas[k] whole episodes (`sample(num_episodes=...)`: RLlib resets the env, autoresets it after each
episode and returns exactly that many finished episodes) and answers {"episodes": [{"world": [seed, index],
"return", "length", "achievements"} from each episode's last info (CrafterEnv's info["episode"])], "runner":
its worker_index, "frames": the first video_frames observations of its first episode (runner 1 only: episode 0
is the video), "version": the newest weights version that acted}. It then frees the service slot its last episode held.

A runner that dies (its process killed, its node lost) is restarted by Ray (`max_num_env_runner_restarts`); the
module of its new life opens episodes under the same owner, `eval<worker_index>` (EvalEnvRunner), and first frees
the slots its previous life left open in the service. Its env is rebuilt and seeded as before, so playing its
quota again plays the same worlds from the first (system/runtime/rllib_eval.py replays it).

One env per runner, not a vector of several: RLlib counts a vector's first episodes to finish, which favours
short episodes and would not be the fixed set of worlds play_episodes plays; one env runner per env keeps
`num_episodes` exact. The module's per-episode noise comes from the world (actors/world_connector.py), so which
runner or slot plays an episode does not matter. No replay writes: the evaluator only reads episodes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.env_runner_group import EnvRunnerGroup
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from actors.previous_action_connector import PreviousActionToBatch
from actors.service_policy_module import ServicePolicyModule
from actors.world_connector import WorldToBatch
from system.envs.crafter_env import CrafterEnv


@dataclass(frozen=True)
class EvalRunnersSpec:
    service: Any                   # the WorldModelService actor handle
    runners: int                   # env runners = envs played at once
    size: tuple[int, int] = (64, 64)
    max_steps: int = 10000         # an episode is truncated after this many steps
    seed: int = 0                  # env k plays CrafterEnv's world sequence seed + k


def make_eval_crafter(env_config) -> CrafterEnv:
    return CrafterEnv(size=tuple(env_config["size"]), seed=env_config["seed"],
                      max_episode_steps=env_config["max_steps"])


class EvalEnvRunner(SingleAgentEnvRunner):
    """A SingleAgentEnvRunner whose module owns its service slots as `eval<worker_index>`: the same name in every
    life of the runner, so a restarted runner frees what its dead predecessor held (ServicePolicyModule)."""

    def make_module(self):
        env = self.env.unwrapped if self.env is not None else None
        spec = self.config.get_rl_module_spec(env=env, spaces=self.get_spaces(), inference_only=True)
        spec.model_config = {**spec.model_config, "owner": f"eval{self.worker_index}"}
        self.module = spec.build()


class _EvalConfig(AlgorithmConfig):
    """An AlgorithmConfig with no algorithm: it only says which module acts and how the runners are built."""

    def get_default_rl_module_spec(self):
        return RLModuleSpec(module_class=ServicePolicyModule)


def eval_runner_group(spec: EvalRunnersSpec, max_restarts: int = 3) -> EnvRunnerGroup:
    """R env runners; Ray restarts a lost one up to `max_restarts` times (the caller replays its quota)."""
    config = (_EvalConfig()
              .environment(make_eval_crafter, env_config={"size": list(spec.size), "seed": spec.seed,
                                                          "max_steps": spec.max_steps})
              .env_runners(env_runner_cls=EvalEnvRunner, num_env_runners=spec.runners, num_envs_per_env_runner=1,
                           num_cpus_per_env_runner=0,
                           env_to_module_connector=lambda env, spaces, device: [PreviousActionToBatch(),
                                                                                WorldToBatch()])
              .rl_module(rl_module_spec=RLModuleSpec(module_class=ServicePolicyModule,
                                                     model_config={"service": spec.service}))
              .fault_tolerance(restart_failed_env_runners=True, max_num_env_runner_restarts=max_restarts)
              .debugging(seed=spec.seed - 1))                      # runner r resets with seed + r - 1
    return EnvRunnerGroup(config=config, local_env_runner=False)


def play_quota(runner, quotas: list[int], video_frames: int = 0, fresh_env: bool = False) -> dict:
    """Runs in runner `runner` (a SingleAgentEnvRunner of the group): its env's quota of whole episodes.
    fresh_env: build the env anew first (RLlib then seeds its first reset again: the worlds start over)."""
    k = runner.worker_index - 1
    if fresh_env:
        runner.make_env()
    episodes = runner.sample(num_episodes=quotas[k], explore=False) if quotas[k] else []
    runner.module.release()   # the slot of the last episode (the module frees a slot when the next one starts)
    played = []
    for episode in episodes:
        first, last = episode.get_infos(0), episode.get_infos(-1)
        played.append({"world": [int(first["world"]["seed"]), int(first["world"]["index"])],
                       "return": float(last["episode"]["return"]), "length": int(last["episode"]["length"]),
                       "achievements": {name: int(n) for name, n in last["episode"]["achievements"].items()}})
    frames = np.asarray(episodes[0].get_observations()[:video_frames]) if k == 0 and episodes and video_frames \
        else None
    return {"runner": runner.worker_index, "episodes": played, "frames": frames, "version": int(runner.module.version)}
