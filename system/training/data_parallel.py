"""Data parallelism inside the learner actors: one torch.distributed process group, gradients averaged.

    group = DataParallelGroup.join(rank, world_size, master_addr, master_port)   # gloo on CPU, NCCL on GPU
    group.attach(trainer)      # trainer.grad_sync and every RunningRMS.reduce_value -> means over the ranks
    ... trainer.step(local_frames) ...   # local batch = global batch / world_size, the same size on every rank

Each rank computes the loss of its equal share of the global batch (a mean over its rows); averaging the
gradients over ranks then gives the gradient of the mean over the global batch. The running loss normalisers
see the mean loss over ranks before they update, so every rank divides by the same RMS as one process would.
Clipping and the optimizer step then run identically on every rank, and the replicas stay equal.
A process group cannot be repaired after a rank dies: the learner recreates it and reloads a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

from system.objectives.loss_norm import RunningRMS


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

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def average_gradients(self, model: nn.Module) -> None:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])  # one all-reduce instead of one per tensor
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere (replicas start equal)."""
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)

    def attach(self, trainer) -> None:
        trainer.grad_sync = self.average_gradients
        for module in trainer.loss_fn.modules():
            if isinstance(module, RunningRMS):
                module.reduce_value = self.mean
        self.broadcast_parameters(trainer.model)

    def leave(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
