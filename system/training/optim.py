"""Optimizer and learning-rate schedule shared by every learner (the paper gives neither; these are ours).

    optimizer = make_optimizer(model, lr, weight_decay)       # AdamW, betas (0.9, 0.95); no decay on vectors
    lr = warmup_cosine(step, lr, warmup, total, min_ratio)    # linear warm-up, then cosine to min_ratio * lr
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def warmup_cosine(step: int, lr: float, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; matrices decay, norms, biases and other vectors do not."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
