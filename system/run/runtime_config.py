"""The `runtime` config section: how the main job spreads work over Ray actors (system/runtime/).

env_runners = 0 keeps phase-1 collection in the driver process (system/data/collect.py, scripted or random);
env_runners > 0 collects through that many RLlib env runner actors (random actions until a policy exists).
imagination_workers = 0 imagines phase 3's rollouts in the driver; N > 0 starts N Ray imagination workers that
write the `imagined` table (replay.tables.imagined: its samples_per_insert limits them against the learner);
imagine_on says where they roll out: "worker" (each its own copy of the models: on the CPU, or with
imagination_worker_gpus = g > 0 on its own g GPUs, a fraction to share one) or "service" (one world-model
service actor holds the models and batches every worker's start contexts).
learners = N > 0 trains the tokenizer, the dynamics and the agent heads (phase 2) on N data-parallel learner
actors that sample their own shares of each batch from Redis (one GPU each where the cluster has GPUs).
online_steps_per_update = r > 0 (with env_runners > 0) keeps the env runners collecting through phases 2 and 3,
acting through the world-model service with the policy being trained: r env steps per training update
(system/runtime/online_collection.py).
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGINE_ON = ("worker", "service")


@dataclass
class RuntimeConfig:
    env_runners: int = 0           # Ray env runner actors for phase-1 data; 0: collect in the driver
    envs_per_runner: int = 2       # Crafter envs each runner steps together (RLlib vector env)
    steps_per_call: int = 200      # env steps per runner call; a crash loses at most one call's fragments
    collect_env_steps: int = 0     # phase-1 target; 0: data.collect.episodes x data.collect.max_episode_steps
    num_cpus: int = 0              # CPUs of a local Ray instance; 0: all of the machine
    report_every_s: float = 5.0    # seconds between progress lines
    imagination_workers: int = 0   # Ray actors imagining phase-3 rollouts; 0: imagine in the driver
    imagine_on: str = "worker"     # with imagination workers: "worker" (own model copies) or "service" (the
                                   # world-model service rolls out every worker's contexts)
    imagination_worker_gpus: float = 0.0  # imagine_on=worker: GPUs per worker holding its model copy; 0: CPU
    publish_every: int = 1         # updates between two weight versions sent to imagination workers (phase 3)
                                   # and to the online collection's world-model service (phases 2 and 3)
    online_steps_per_update: float = 0.0  # env steps collected per phase-2/3 update; 0: none after phase 1
    learners: int = 0              # data-parallel Ray learner actors for phases 1a, 1b, 2 and 3 (one GPU each where
                                   # the run has GPUs; phase 3 stays in the driver with imagination_workers > 0);
                                   # 0: the driver trains them (system/runtime/phase_learners.py)

    def __post_init__(self) -> None:
        if self.imagination_workers < 0 or self.publish_every < 1:
            raise ValueError(f"runtime.imagination_workers = {self.imagination_workers} must be >= 0 and "
                             f"runtime.publish_every = {self.publish_every} >= 1")
        if self.imagine_on not in IMAGINE_ON:
            raise ValueError(f"runtime.imagine_on = {self.imagine_on!r}: expected one of {IMAGINE_ON}")
        if self.imagination_worker_gpus < 0 or (self.imagination_worker_gpus and self.imagine_on != "worker"):
            raise ValueError(f"runtime.imagination_worker_gpus = {self.imagination_worker_gpus} must be >= 0, and "
                             "> 0 only with runtime.imagine_on = worker (through the service, workers hold no model)")
        if self.learners < 0:
            raise ValueError(f"runtime.learners = {self.learners} must be >= 0 (0: the driver trains)")
        if self.online_steps_per_update < 0:
            raise ValueError(f"runtime.online_steps_per_update = {self.online_steps_per_update} must be >= 0")
        if self.online_steps_per_update and not self.env_runners:
            raise ValueError(f"runtime.online_steps_per_update = {self.online_steps_per_update} needs env runners "
                             "to collect with (runtime.env_runners > 0)")
        if self.env_runners < 0 or self.envs_per_runner < 1 or self.steps_per_call < 1:
            raise ValueError("runtime.env_runners >= 0, runtime.envs_per_runner >= 1, runtime.steps_per_call >= 1")
