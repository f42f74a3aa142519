"""Image quality figures shared by training, tests and benchmarks.

    psnr(x, y)   x, y (..., H, W, C) in [0, 1] -> scalar: mean over images of 10 log10(1 / MSE_image)
"""

from __future__ import annotations

import torch


def psnr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = (x.float() - y.float()).pow(2).flatten(-3).mean(-1)
    return (10.0 * torch.log10(1.0 / (mse + eps))).mean()
