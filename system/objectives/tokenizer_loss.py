"""Tokenizer objective (paper Eq. 5): RMS-normalised MSE + 0.2 RMS-normalised LPIPS.

    loss_fn = TokenizerLoss(tokenizer_cfg, lpips)   # lpips: an LPIPS module, or None (MSE alone)
    loss, metrics = loss_fn(recon, frames)          # recon, frames (B, T, H, W, 3) float in [0, 1]

Each term is divided by its own running RMS estimate, detached (system/objectives/loss_norm.py), so the
gradient is the raw gradient scaled by 1 / RMS and never vanishes. The loss covers every patch, masked or not
(the paper leaves open which patches the loss covers; all of them also trains the p = 0 inference case).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from system.model.tokenizer import TokenizerConfig
from system.objectives.loss_norm import RunningRMS
from system.objectives.lpips import LPIPS


class TokenizerLoss(nn.Module):
    """(recon, frames) -> (loss, metrics). Each term is divided by its own detached running RMS."""

    def __init__(self, cfg: TokenizerConfig, lpips: LPIPS | None):
        super().__init__()
        self.lpips_weight = cfg.lpips_weight
        self.lpips = lpips
        self.mse_norm = RunningRMS(cfg.rms_decay)
        self.lpips_norm = RunningRMS(cfg.rms_decay)

    def forward(self, recon: torch.Tensor, frames: torch.Tensor):
        mse = F.mse_loss(recon.float(), frames.float())
        loss = self.mse_norm(mse)
        metrics = {"mse": mse.detach()}
        if self.lpips is not None and self.lpips_weight > 0:
            flat = lambda x: x.flatten(0, 1).permute(0, 3, 1, 2).float()
            perceptual = self.lpips(flat(recon), flat(frames)).mean()
            loss = loss + self.lpips_weight * self.lpips_norm(perceptual)
            metrics["lpips"] = perceptual.detach()
        metrics["loss"] = loss.detach()
        return loss, metrics
