"""An imagination worker: start contexts from replay, rollouts of the current policy in the frozen world model,
encoded trajectories into the `imagined` table.

    worker = ImaginationWorker(tokenizer, dynamics, heads, train_cfg, generation, store, table, context_table,
                               seed=0)                      # heads: the phase-2 heads (their policy is the prior)
    worker.set_policy(version, heads_state)                 # newer heads from the agent learner
    seq = worker.produce()                                  # one batch of rollouts, inserted (rate limited)

It holds its own copy of the models (CPU or its own GPU) and uses ImaginationTrainer.imagine, the in-driver
path's code, so a trajectory from a worker is what the driver would have imagined with the same policy. Each
trajectory carries the policy version that acted. `set_policy` refuses a version older than the one it holds.
"""

from __future__ import annotations

import dataclasses

import torch

from system.imagination.trajectory import ImaginedTrajectory, encode_trajectory
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
