"""World-model learner actor: a TokenizerTrainer replica in a torch.distributed data-parallel group.

    learners = [TokenizerLearner.remote(cfg.tokenizer, replay_cfg, rank=r, world_size=W, seed=s) for r in range(W)]
    ray.get([l.join_group.remote(addr, port) for l in learners])   # rank 0's address (free_port on rank 0's node)
    ray.get([l.train.remote(steps=100) for l in learners])        # each rank samples B / W sequences itself
    version, weights_ref = ray.get(learners[0].publish.remote())   # state dict in Ray's object store

Each rank pulls its own share of the global batch from the replay store (its own sampling seed) and takes the
step of system/training/tokenizer_trainer.py with gradients averaged over the group
(system/training/data_parallel.py). `publish` puts the model's state dict into the object store under an
increasing version; consumers (the world-model service, later) fetch the newest reference. The dynamics
learner plugs in the same way around DynamicsTrainer (not built yet).
"""

from __future__ import annotations

import os
import socket

import numpy as np
import ray
import torch

from system.phases.frames import frames_to_float
from system.replay import make_store
from system.training.checkpoint import load_checkpoint, save_checkpoint
from system.training.data_parallel import DataParallelGroup
from system.training.tokenizer_trainer import TokenizerTrainer


class TokenizerLearnerShell:
    def __init__(self, section, replay_cfg, rank: int, world_size: int, seed: int, table: str = "real"):
        torch.manual_seed(seed)  # every rank builds the same initial model; rank 0 broadcasts it anyway
        self.section, self.rank, self.world_size, self.table = section, rank, world_size, table
        # With num_gpus=1 Ray shows the actor its one GPU; NCCL then joins the ranks (gloo on CPU).
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        generator = torch.Generator(device=self.device).manual_seed(seed + 1 + rank)  # MAE masks differ per rank
        self.trainer = TokenizerTrainer(section.model, section.train, self.device, generator)
        self.store = make_store(replay_cfg, seed=seed + rank) if replay_cfg is not None else None
        self.group: DataParallelGroup | None = None
        self.version = 0

    def address(self) -> tuple[str, int]:
        """(ip, free port) of this actor's node, for rank 0 to host the group's rendezvous."""
        with socket.socket() as s:
            s.bind(("", 0))
            return ray.util.get_node_ip_address(), s.getsockname()[1]

    def join_group(self, master_addr: str, master_port: int) -> int:
        self.group = DataParallelGroup.join(self.rank, self.world_size, master_addr, master_port)
        self.group.attach(self.trainer)
        return os.getpid()

    def train_on(self, frames: np.ndarray) -> dict[str, float]:
        """One step on given (B_local, T, H, W, 3) uint8 frames (tests and benchmarks)."""
        return self.trainer.step(frames_to_float(frames, self.device))

    def train(self, steps: int) -> dict[str, float]:
        """`steps` steps on batches this rank samples itself; the last step's metrics."""
        local_batch = self.section.train.batch_size // self.world_size
        metrics = {}
        for _ in range(steps):
            batch = self.store.sample(self.table, local_batch, self.section.train.seq_len)
            metrics = self.train_on(batch.frames)
        return metrics

    def step_count(self) -> int:
        return self.trainer.step_count

    def publish(self) -> tuple[int, ray.ObjectRef]:
        self.version += 1
        state = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}
        return self.version, ray.put(state)

    def state_dict(self) -> dict:
        return self.trainer.state_dict()

    def save(self, path: str, extra: dict | None = None) -> int:
        """Rank 0 writes the replicas' common state (they are identical) plus `extra` (the model config);
        returns the step saved."""
        save_checkpoint(path, {**self.trainer.state_dict(), **(extra or {})})
        return self.trainer.step_count

    def load(self, path: str) -> int:
        self.trainer.load_state_dict(load_checkpoint(path, self.device))
        return self.trainer.step_count

    def pid(self) -> int:
        return os.getpid()

    def leave_group(self) -> None:
        if self.group is not None:
            self.group.leave()


TokenizerLearner = ray.remote(num_cpus=0)(TokenizerLearnerShell)
