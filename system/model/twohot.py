"""Symlog / symexp and the two-hot encoding over symlog-spaced bins (DreamerV3; paper section 4, Eq. 9-10).

    bins = TwoHotBins(count=255)               # bins evenly spaced in symlog space on [-20, 20]
    target = bins.encode(y)                    # y (...,) real -> (..., count) two-hot weights, sum 1
    y_hat = bins.decode(logits)                # logits (..., count) -> (...,) symexp of the expected bin
    loss = bins.cross_entropy(logits, y)       # (...,) -sum_i target_i log softmax(logits)_i

A value y is placed on the two bins b_k <= symlog(y) < b_{k+1} with linear weights, so sum_i w_i b_i equals
symlog(y) exactly and symexp of that expectation gives y back (round trip; the expected value of a target is
the target). Values beyond the outer bins are clamped to them. The range [-20, 20] in symlog space covers
|y| up to e^20 - 1 (DreamerV3's choice); the bin count is a flag (paper: not stated, DreamerV3 255).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHotBins(nn.Module):
    def __init__(self, count: int = 255, low: float = -20.0, high: float = 20.0):
        super().__init__()
        if count < 2:
            raise ValueError(f"two-hot bin count must be at least 2, got {count}")
        if not low < high:
            raise ValueError(f"two-hot range needs low < high, got [{low}, {high}]")
        self.count = count
        self.register_buffer("points", torch.linspace(low, high, count), persistent=False)  # symlog space

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """(...,) -> (..., count): weights on the two bins around symlog(y)."""
        points = self.points.to(y.dtype)
        x = symlog(y).clamp(points[0], points[-1])
        upper = torch.searchsorted(points, x.detach().contiguous(), right=True).clamp(1, self.count - 1)
        lower = upper - 1
        low_point, high_point = points[lower], points[upper]
        weight_high = (x - low_point) / (high_point - low_point)
        target = torch.zeros(*y.shape, self.count, dtype=y.dtype, device=y.device)
        target.scatter_(-1, lower[..., None], (1 - weight_high)[..., None])
        target.scatter_add_(-1, upper[..., None], weight_high[..., None])
        return target

    def decode_probs(self, probs: torch.Tensor) -> torch.Tensor:
        """(..., count) bin weights -> (...,) symexp(sum_i p_i b_i)."""
        return symexp((probs * self.points.to(probs.dtype)).sum(-1))

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        return self.decode_probs(logits.float().softmax(-1))

    def cross_entropy(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(..., count), (...,) -> (...,): two-hot cross entropy, the target never carries a gradient."""
        target = self.encode(y.detach().float())
        return -(target * F.log_softmax(logits.float(), -1)).sum(-1)
