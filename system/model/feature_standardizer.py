"""Per-feature standardisation of the agent features that every agent head reads (running statistics).

    features = FeatureStandardizer(dim=S_g * D, decay=0.99)
    features.observe(h)              # h (..., dim): update the running mean and variance (phase 2 only)
    x = features(h)                  # (..., dim) -> (..., dim): (h - mean) / sqrt(var + eps); identity before any
                                     # observation

Why: the agent token's output is a large vector shared by every step plus a small per-step part (measured on a
phase-2 model of the long learning test: mean norm 7.8, per-step spread 0.6). A head's first layer then sees
nearly the same input for every step; its gradients move it along the shared vector, and the rare rewarded steps
are learnt slowly (the reward head's train AUC 0.58 where a linear probe on standardised features reaches 0.75).
Per-sample norms (LayerNorm, RMSNorm) keep the shared vector; subtracting a per-feature mean removes it.

The statistics are buffers, never trained: the phase-2 trainer observes the features of its relevant rows before
the heads read them, and nothing else updates them, so phase 3, acting and evaluation read features standardised
exactly as the heads were trained on them (train and eval modes behave alike). The running mean and variance
are exponential moving averages of the batch mean and the batch variance, bias-corrected like Adam's moments (the
first observation is used as is).
Data parallel: `reduce_value` (the mean over ranks) makes the batch mean the global batch's, then the variance
about it the global batch's (ranks hold equal row counts), so every rank keeps the statistics one process would.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class FeatureStandardizer(nn.Module):
    def __init__(self, dim: int, decay: float = 0.99, eps: float = 1e-4):
        super().__init__()
        if dim < 1:
            raise ValueError(f"feature standardizer dim = {dim} must be >= 1")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"feature standardizer decay = {decay} must be in [0, 1)")
        self.decay, self.eps = decay, eps
        self.register_buffer("mean_sum", torch.zeros(dim))
        self.register_buffer("var_sum", torch.zeros(dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.reduce_value = None   # optional callable on the detached moments (the mean over data-parallel ranks)

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, variance), bias-corrected; (0, 1) before any observation."""
        correction = 1.0 - self.decay ** self.updates.clamp(min=1).float()
        started = self.updates > 0
        mean, var = self.mean_sum / correction, self.var_sum / correction
        return torch.where(started, mean, torch.zeros_like(mean)), torch.where(started, var, torch.ones_like(var))

    @torch.no_grad()
    def observe(self, h: torch.Tensor) -> None:
        """h (..., dim): fold the batch's per-feature mean and variance into the running ones. The variance is
        taken about the batch mean (not E[h^2] - mean^2, which cancels when the shared vector dwarfs the spread)."""
        x = h.detach().float().reshape(-1, self.mean_sum.shape[0])
        mean = x.mean(0)
        if self.reduce_value is not None:
            mean = self.reduce_value(mean)
        var = (x - mean).square().mean(0)
        if self.reduce_value is not None:   # about the global batch's mean: the global batch's variance
            var = self.reduce_value(var)
        self.mean_sum.mul_(self.decay).add_((1.0 - self.decay) * mean)
        self.var_sum.mul_(self.decay).add_((1.0 - self.decay) * var)
        self.updates.add_(1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        mean, var = self.moments()
        # exactly the identity before any observation (torch.where: no host sync)
        scale = torch.where(self.updates > 0, torch.rsqrt(var + self.eps), torch.ones_like(var))
        return (h - mean.to(h.dtype)) * scale.to(h.dtype)
