"""A slow exponential-moving-average copy of a module (the EMA value head that gives bootstrap values).

    slow = SlowCopy(value_head, decay=0.98)
    slow.update(value_head)        # p_slow <- decay * p_slow + (1 - decay) * p_online, once per optimiser step
    slow(h)                        # the copy's forward, never with gradient

Decay 0.98 per update is DreamerV3's slow critic (it mixes 2% of the online weights each update); the Dreamer 4
paper does not say whether it uses a slow critic (checklist 17 asks for one). The copy's parameters have
requires_grad False and live outside the online module, so no optimiser built from the online module sees them.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class SlowCopy(nn.Module):
    def __init__(self, online: nn.Module, decay: float = 0.98):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(online).requires_grad_(False)

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        for slow, fast in zip(self.module.parameters(), online.parameters()):
            slow.lerp_(fast.detach(), 1.0 - self.decay)
        for slow, fast in zip(self.module.buffers(), online.buffers()):
            slow.copy_(fast)

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)

    def predict(self, *args, **kwargs):
        with torch.no_grad():
            return self.module.predict(*args, **kwargs)
