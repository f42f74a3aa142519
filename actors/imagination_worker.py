"""Imagination worker actor: a thin Ray shell around system/training/imagination_worker.py.

    # state_ref: {"tokenizer", "dynamics", "heads", "prior"} state dicts in Ray's object store
    worker = ImaginationWorkerActor.remote(spec, replay_cfg, state_ref, version)
    seq, version = ray.get(worker.produce.remote(version, heads_ref))  # one rollout batch into the `imagined` table

The worker builds its own copy of the frozen world model, the heads (policy version `version`) and the prior
(the frozen phase-2 policy) from the state it is given (on the CPU, or with spec.device "cuda" on the GPU Ray
gave the actor), takes newer heads by version with each `produce` call (an object reference, resolved by Ray),
and writes into the run's Redis (URL and password in replay_cfg, never in config files).
`produce` blocks while the rate limiter holds inserts back, so the driver keeps one call in flight per worker.

With `spec.service` (a WorldModelService handle; runtime.imagine_on=service) the worker holds no model: it
sends its start contexts to the service's `imagine` and stores the answer (ServiceImaginationWorker); the
driver publishes newer heads to the service, not to the workers, and `state` is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
import torch

from system.envs.action_space import ActionSpace
from system.imagination.generation import GenerationConfig
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.replay import make_store
from system.replay.trajectory_table import trajectory_table
from system.training.imagination_trainer import ImaginationTrainConfig
from system.training.imagination_worker import ImaginationWorker, ServiceImaginationWorker


@dataclass(frozen=True)
class WorkerSpec:
    tokenizer: TokenizerConfig
    dynamics: DynamicsConfig
    heads: AgentHeadsConfig
    action_space: ActionSpace
    train: ImaginationTrainConfig
    generation: GenerationConfig
    context_table: str = "real"    # start contexts come from here
    table: str = "imagined"        # trajectories go there
    seed: int = 0
    threads: int = 1               # torch threads: rollouts are small batches, and the box is shared
    service: Any = None            # a WorldModelService handle: imagine through it instead of own models
    version_offset: int = 1        # with a service: its weights version for phase-3 policy version 0
    device: str = "cpu"            # own models: "cuda" on the GPU the actor was given (.options(num_gpus=...))


class ImaginationWorkerShell:
    def __init__(self, spec: WorkerSpec, replay_cfg, state: dict | None, version: int = 0):
        self.store = make_store(replay_cfg, seed=spec.seed)
        table = trajectory_table(self.store, spec.table, seed=spec.seed)
        if spec.service is not None:
            def imagine(frames, actions, task, horizon, seed):
                return ray.get(spec.service.imagine.remote(frames, actions, horizon, seed, task=task))
            self.worker = ServiceImaginationWorker(imagine, spec.train, self.store, table, spec.context_table,
                                                   seed=spec.seed, version_offset=spec.version_offset)
            return
        torch.set_num_threads(spec.threads)
        device = torch.device(spec.device)
        tokenizer = Tokenizer(spec.tokenizer)
        tokenizer.load_state_dict(state["tokenizer"])
        dynamics = Dynamics(spec.dynamics, spec.action_space)
        dynamics.load_state_dict(state["dynamics"])
        heads = AgentHeads(spec.heads, spec.action_space.components, spec.dynamics.agent_tokens,
                           spec.dynamics.transformer.dim)
        heads.load_state_dict(state["heads"])
        tokenizer, dynamics, heads = tokenizer.to(device), dynamics.to(device), heads.to(device)
        self.worker = ImaginationWorker(tokenizer, dynamics, heads, spec.train, spec.generation, self.store, table,
                                        spec.context_table, seed=spec.seed)
        self.worker.trainer.prior.load_state_dict(state["prior"])
        self.worker.version = int(version)

    def produce(self, version: int, heads_state: dict | None = None) -> tuple[int, int]:
        if isinstance(self.worker, ServiceImaginationWorker):  # the service holds the heads
            return self.worker.produce()
        if heads_state is not None and version > self.worker.version:
            self.worker.set_policy(version, heads_state)
        return self.worker.produce(), self.worker.version


ImaginationWorkerActor = ray.remote(num_cpus=0)(ImaginationWorkerShell)
