"""An imagination worker: start contexts from replay, rollouts of the current policy in the frozen world model,
encoded trajectories into the `imagined` table.

    worker = ImaginationWorker(tokenizer, dynamics, heads, train_cfg, generation, store, table, context_table,
                               seed=0)                      # heads: the phase-2 heads (their policy is the prior)
    worker.set_policy(version, heads_state)                 # newer heads from the agent learner
    seq = worker.produce()                                  # one batch of rollouts, inserted (rate limited)

It holds its own copy of the models (CPU or its own GPU) and uses ImaginationTrainer.imagine, the in-driver
path's code, so a trajectory from a worker is what the driver would have imagined with the same policy. Each
trajectory carries the policy version that acted. `set_policy` refuses a version older than the one it holds.

    worker = ServiceImaginationWorker(imagine, train_cfg, store, table, context_table, seed=0, version_offset=1)
    seq, version = worker.produce()

holds no model: `imagine(frames (B, T0, H, W, 3) uint8, actions (B, T0, A), task (B,), horizon, seed) -> bytes`
asks the world-model service (actors/world_model_service.py), which rolls the contexts out with its own weights
(the same routine, system/imagination/imagine.py) and answers an encoded trajectory stamped with its weights
version. The worker checks the bytes (decode_trajectory, no pickle), stores the version as the policy's update
count (service version - version_offset: the service counts from 1, 0 being its state before any weights) and
inserts them. Each call's seed is drawn from the worker's seed and its call count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from system.imagination.trajectory import ImaginedTrajectory, decode_trajectory, encode_trajectory
from system.training.imagination_trainer import ImaginationTrainer


class ImaginationWorker:
    def __init__(self, tokenizer, dynamics, heads, train_cfg, generation, store, table, context_table: str,
                 seed: int = 0):
        self.tokenizer = tokenizer.eval().requires_grad_(False)
        self.trainer = ImaginationTrainer(dynamics, heads, train_cfg, generation, seed=seed)
        self.store, self.table, self.context_table = store, table, context_table
        self.version = 0

    def set_policy(self, version: int, heads_state: dict) -> None:
        if version < self.version:
            raise ValueError(f"policy version {version} is older than the worker's {self.version}")
        self.trainer.heads.load_state_dict(heads_state)
        self.version = int(version)

    def rollout(self) -> ImaginedTrajectory:
        cfg = self.trainer.cfg
        device = next(self.trainer.model.parameters()).device
        batch = self.store.sample_contexts(self.context_table, cfg.batch_size, cfg.context)
        frames = torch.from_numpy(batch.frames).to(device).float().div_(255.0)
        with torch.no_grad():
            z = self.trainer.model.pack(self.tokenizer.encode(frames))
        actions = torch.from_numpy(batch.actions).to(device).long()
        task = torch.from_numpy(batch.task_ids).to(device).long()
        traj = self.trainer.imagine(z, actions, task)
        return dataclasses.replace(traj, policy_version=self.version)

    def produce(self, timeout: float | None = None) -> int:
        traj = self.rollout()
        return self.table.insert(encode_trajectory(traj), steps=traj.batch * traj.horizon, timeout=timeout)


class ServiceImaginationWorker:
    def __init__(self, imagine: Callable[..., bytes], train_cfg, store, table, context_table: str, seed: int = 0,
                 version_offset: int = 1):
        self.imagine, self.cfg = imagine, train_cfg
        self.store, self.table, self.context_table = store, table, context_table
        self.seed, self.offset, self.calls = seed, version_offset, 0

    def rollout(self) -> ImaginedTrajectory:
        cfg = self.cfg
        batch = self.store.sample_contexts(self.context_table, cfg.batch_size, cfg.context)
        seed = int(np.random.SeedSequence([self.seed, self.calls]).generate_state(1)[0] % 2**31)
        self.calls += 1
        traj = decode_trajectory(self.imagine(batch.frames, batch.actions, batch.task_ids, cfg.horizon, seed))
        if traj.policy_version < self.offset or (traj.batch, traj.horizon) != (cfg.batch_size, cfg.horizon):
            raise ValueError(f"the service answered {traj.batch} rollouts of horizon {traj.horizon} at weights version "
                             f"{traj.policy_version}; asked for {cfg.batch_size} of {cfg.horizon}, at a version >= "
                             f"{self.offset} (weights loaded)")
        return dataclasses.replace(traj, policy_version=traj.policy_version - self.offset)

    def produce(self, timeout: float | None = None) -> tuple[int, int]:
        traj = self.rollout()
        seq = self.table.insert(encode_trajectory(traj), steps=traj.batch * traj.horizon, timeout=timeout)
        return seq, traj.policy_version
