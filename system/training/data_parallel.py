"""Data parallelism inside the learner actors: one torch.distributed process group, gradients averaged.

    group = DataParallelGroup.join(rank, world_size, master_addr, master_port)   # gloo on CPU, NCCL on GPU
    group.attach(trainer)      # grad_sync, rank_mean, shard, every RunningRMS / FeatureStandardizer .reduce_value
    ... trainer.step(local_batch) ...   # local batch = global batch / world_size, the same size on every rank

Each rank computes the loss of its equal share of the global batch (a mean over its rows); averaging the
gradients over ranks then gives the gradient of the mean over the global batch. The running loss normalisers
see the mean loss over ranks before they update, so every rank divides by the same RMS as one process would;
the agent heads' input statistics (FeatureStandardizer) likewise fold in the mean of the ranks' batch moments.
Means over a masked subset (the agent losses' valid steps) divide by the group's mean count (`rank_mean`).
Clipping and the optimizer step then run identically on every rank, and the replicas stay equal.

Which rows a rank holds (`Shard`): local row j of rank r is row j * world_size + r of the global batch
(interleaved), so the rows a batch treats specially because they come first (single images, bootstrap rows)
spread over the ranks and stay the first rows of every share. Randomness that belongs to a row (the shortcut's
noise and signal levels) is drawn from a seed of its global row (`Shard.row_seeds`): the same on any rank.

A trainer takes part through `data_parallel_parts()` -> (the trained module, the module holding its
RunningRMS normalisers) and the attributes `grad_sync` (called on the trained module between backward and
clipping) and, where it has them, `shard` and `rank_mean`.
A process group cannot be repaired after a rank dies: the learner recreates it and reloads a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from system.model.feature_standardizer import FeatureStandardizer
from system.objectives.loss_norm import RunningRMS


@dataclass(frozen=True)
class Shard:
    """The rows of a global batch one rank holds: local row j is global row j * world_size + rank."""
    rank: int = 0
    world_size: int = 1

    def share(self, rows: int, name: str = "batch") -> int:
        """This rank's row count of a global batch of `rows` (equal shares; `name` for the error)."""
        if rows % self.world_size:
            raise ValueError(f"{name} = {rows} rows cannot be shared equally by {self.world_size} learners")
        return rows // self.world_size

    def rows(self, local: int) -> list[int]:
        """Global indices of the first `local` rows of this rank, ascending."""
        return [j * self.world_size + self.rank for j in range(local)]

    def count_below(self, rows: int) -> int:
        """How many of this rank's rows are among the first `rows` global rows."""
        return max(0, -(-(rows - self.rank) // self.world_size))

    def row_seeds(self, local: int, *key: int) -> list[int]:
        """One seed per local row from (key..., global row index): a row draws the same on any rank."""
        return [int(np.random.SeedSequence([*key, row]).generate_state(1, np.uint64)[0] >> 1)
                for row in self.rows(local)]


@dataclass
class DataParallelGroup:
    rank: int
    world_size: int

    @classmethod
    def join(cls, rank: int, world_size: int, master_addr: str, master_port: int, backend: str = "",
             timeout_s: float = 120.0) -> DataParallelGroup:
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend, init_method=f"tcp://{master_addr}:{master_port}", rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=timeout_s))
        return cls(rank, world_size)

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def average_gradients(self, model: nn.Module) -> None:
        """Every trained parameter's gradient averaged over the ranks, in one flat all-reduce. A parameter that
        got no gradient on some rank (a module its rows did not reach) counts as zero there; one that got none on
        any rank keeps no gradient, as in one process on the global batch (AdamW then skips it)."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
                         + [torch.tensor([float(p.grad is not None) for p in params], device=params[0].device,
                                         dtype=params[0].dtype)])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p, present in zip(params, flat[-len(params):].tolist()):
            average = flat[offset:offset + p.numel()].view_as(p) / self.world_size
            offset += p.numel()
            if present:
                if p.grad is None:
                    p.grad = average.clone()
                else:
                    p.grad.copy_(average)

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere (replicas start equal)."""
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)

    def attach(self, trainer) -> None:
        trained, norms = trainer.data_parallel_parts()
        trainer.grad_sync = self.average_gradients
        for name, value in (("shard", self.shard), ("rank_mean", self.mean)):
            if hasattr(trainer, name):
                setattr(trainer, name, value)
        for module in norms.modules():
            if isinstance(module, RunningRMS):
                module.reduce_value = self.mean
        for module in trained.modules():   # the agent heads' input statistics (only phase 2 updates them)
            if isinstance(module, FeatureStandardizer):
                module.reduce_value = self.mean
        self.broadcast_parameters(trained)

    def leave(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
