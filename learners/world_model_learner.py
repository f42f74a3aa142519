"""World-model learner actor: one rank of a phase's data-parallel training (tokenizer, dynamics, agent phase 2).

    spec = DynamicsLearnerSpec(cfg.dynamics, cfg.tokenizer.model, action_space, replay_cfg, table, seed=...)
    learners = [WorldModelLearner.options(**placement.learner_options(r)).remote(spec, r, W, weights_ref)
                for r in range(W)]
    ray.get([l.join_group.remote(addr, port) for l in learners])   # rank 0's address (free port on its node)
    ray.get([l.train.remote(steps=100) for l in learners])        # each rank samples its share itself
    version, ref = ray.get(learners[0].publish.remote(7, ("dynamics", "policy")))   # state dicts in the object store

In: a learner spec (system/phases/train_*.py: TokenizerLearnerSpec, DynamicsLearnerSpec, AgentLearnerSpec),
its rank and the group size, and `weights` (the frozen or initial state dicts, resolved by Ray from the
driver's object reference). The spec builds the phase's steps here (system/phases/steps.py); the process group
(system/training/data_parallel.py) averages their gradients. Out: metrics of the last step, the checkpoint in
the driver's format (rank 0), and versioned weights in Ray's object store for the world-model service.
"""

from __future__ import annotations

import os
import socket

import ray

from system.training.checkpoint import load_checkpoint, save_checkpoint
from system.training.data_parallel import DataParallelGroup, Shard


class WorldModelLearnerShell:
    def __init__(self, spec, rank: int, world_size: int, weights: dict | None = None):
        # The GPU Ray assigned (num_gpus > 0), NCCL joining the ranks; none assigned: CPU and gloo, even where the
        # node's GPUs are visible (Ray 2.60 no longer hides them from actors that ask for none).
        self.device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.rank, self.world_size = rank, world_size
        self.steps = spec.build(Shard(rank, world_size), self.device, weights or {})
        self.group: DataParallelGroup | None = None
        self.version = 0

    def address(self) -> tuple[str, int]:
        """(ip, free port) of this actor's node, for rank 0 to host the group's rendezvous."""
        with socket.socket() as s:
            s.bind(("", 0))
            return ray.util.get_node_ip_address(), s.getsockname()[1]

    def join_group(self, master_addr: str, master_port: int) -> int:
        self.group = DataParallelGroup.join(self.rank, self.world_size, master_addr, master_port,
                                            backend="nccl" if self.device == "cuda" else "gloo")
        self.group.attach(self.steps.trainer)
        return os.getpid()

    def train_on(self, *batch) -> dict[str, float]:
        """One step on a given share of a batch (tests and benchmarks)."""
        return self.steps.train_on(*batch)

    def train(self, steps: int) -> dict[str, float]:
        """`steps` steps on shares this rank samples itself; the last step's metrics."""
        return self.steps.train(steps)

    def step_count(self) -> int:
        return self.steps.step

    def publish(self, version: int | None = None, parts=None) -> tuple[int, ray.ObjectRef]:
        """CPU state dicts of `parts` (default: all) put into the object store as `version` (default: the
        previous one + 1). The object belongs to this actor: it lives as long as the actor does."""
        self.version = self.version + 1 if version is None else int(version)
        return self.version, ray.put(self.steps.weights(parts))

    def state_dict(self) -> dict:
        return self.steps.trainer.state_dict()

    def save(self, path: str) -> int:
        """Writes the phase's checkpoint (the replicas are equal: rank 0's is the model); the step saved."""
        save_checkpoint(path, self.steps.checkpoint())
        return self.steps.step

    def load(self, path: str) -> int:
        self.steps.load(load_checkpoint(path, self.device))
        return self.steps.step

    def pid(self) -> int:
        return os.getpid()

    def placement_group_id(self) -> str | None:
        return ray.get_runtime_context().get_placement_group_id()

    def leave_group(self) -> None:
        if self.group is not None:
            self.group.leave()


WorldModelLearner = ray.remote(num_cpus=0)(WorldModelLearnerShell)
