"""Image quality figures shared by training, tests and benchmarks.

    psnr(x, y)                 x, y (..., H, W, C) in [0, 1] -> scalar: mean over images of 10 log10(1 / MSE_image)
    retrieval_accuracy(x, y)   x, y (M, ...) -> share of i whose nearest y (L2) is y[i]; chance is 1 / M

Retrieval is the content check a blind model fails: a reconstruction (or prediction) that draws a generic frame
is as near to every other frame as to its own, however good its PSNR against a mean frame.
"""

from __future__ import annotations

import torch


def psnr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = (x.float() - y.float()).pow(2).flatten(-3).mean(-1)
    return (10.0 * torch.log10(1.0 / (mse + eps))).mean()


def retrieval_accuracy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Share of rows i of x whose nearest row of y (Euclidean, over all other dimensions) is y[i]."""
    if x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(f"retrieval_accuracy: need two batches of the same shape (M >= 2), got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    distances = torch.cdist(x.flatten(1).float(), y.flatten(1).float())
    return (distances.argmin(1) == torch.arange(x.shape[0], device=x.device)).float().mean()
