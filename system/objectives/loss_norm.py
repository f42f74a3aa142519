"""Loss normalisation by a running root-mean-square estimate (paper section 3, "loss normalization").

    norm = RunningRMS(decay=0.99)
    loss_normalized = norm(loss)          # loss: scalar tensor -> scalar tensor, loss / RMS(loss history)

Each loss term is divided by a running estimate of its own RMS, so terms of very different scales (MSE and
LPIPS in the tokenizer; flow, reward and policy losses later) contribute comparably. The estimate is a
detached buffer: dividing by the current loss *with* gradient would make the normalised loss constant and its
gradient zero (correctness checklist item 14). The gradient of the result is exactly the raw gradient / RMS.

Data parallel: `norm.reduce_value = fn` (e.g. the mean over ranks, system/training/data_parallel.py) is applied
to the detached loss before the update, so every rank divides by the RMS of the global batch's loss and the
averaged gradient equals the one-process gradient of the same global batch.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class RunningRMS(nn.Module):
    def __init__(self, decay: float = 0.99, eps: float = 1e-8):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"RunningRMS decay must be in [0, 1), got {decay}")
        self.decay, self.eps = decay, eps
        self.register_buffer("mean_square", torch.zeros(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.reduce_value = None  # optional callable on the detached loss (the mean over data-parallel ranks)

    @property
    def rms(self) -> torch.Tensor:
        """Bias-corrected RMS estimate (like Adam's moments: not pulled towards the zero init)."""
        correction = 1.0 - self.decay ** self.updates.clamp(min=1).float()
        return (self.mean_square / correction).sqrt().clamp(min=self.eps)

    @torch.no_grad()
    def update(self, value: torch.Tensor) -> None:
        value = value.detach()
        if self.reduce_value is not None:
            value = self.reduce_value(value)
        self.mean_square.mul_(self.decay).add_((1.0 - self.decay) * value.detach().float().pow(2).mean())
        self.updates.add_(1)

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(loss)
        # Before any update (evaluation of a fresh model) the divisor is 1; torch.where avoids a host sync.
        divisor = torch.where(self.updates > 0, self.rms, torch.ones_like(self.rms))
        return loss / divisor.detach().to(loss.dtype)
