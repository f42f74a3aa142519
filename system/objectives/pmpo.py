"""PMPO policy loss (paper Eq. 11) with the reverse KL to the frozen phase-2 prior.

    loss, metrics = pmpo_loss(log_prob, advantage, kl, weights, alpha=0.5, beta=0.3)   # all (N,) or (B, H)

    L = (1 - alpha) / |D-| * sum_{D-} ln pi(a|h)  -  alpha / |D+| * sum_{D+} ln pi(a|h)  +  beta / N * sum KL

D+ = {A >= 0}, D- = {A < 0}: only the SIGN of the advantage A = R^lambda - v enters (no |A| or tanh(A)
weights); each group is averaged over its own size, not over N (checklist 25). kl[i] must be
KL[pi_theta || pi_prior] (reverse KL; the original PMPO uses the other direction) to the frozen phase-2
policy (checklist 23). `weights` (0..1) drop steps after a predicted episode end: a step counts towards its
group and towards N with its weight. No entropy bonus and no return normalisation (paper App. F).
Data parallel: `rank_mean` (the mean over ranks, system/training/data_parallel.py) turns the group sizes and N
into the group's mean counts, so N ranks with averaged gradients take the step of one process on all their rows.
"""

from __future__ import annotations

import torch


def pmpo_loss(log_prob: torch.Tensor, advantage: torch.Tensor, kl: torch.Tensor, weights: torch.Tensor | None = None,
              alpha: float = 0.5, beta: float = 0.3, rank_mean=None) -> tuple[torch.Tensor, dict]:
    if weights is None:
        weights = torch.ones_like(log_prob)
    weights = weights.detach()
    count = rank_mean if rank_mean is not None else (lambda total: total)
    positive = (advantage.detach() >= 0).to(log_prob.dtype) * weights
    negative = (advantage.detach() < 0).to(log_prob.dtype) * weights
    positive_mean = (positive * log_prob).sum() / count(positive.sum()).clamp_min(1e-8)
    negative_mean = (negative * log_prob).sum() / count(negative.sum()).clamp_min(1e-8)
    kl_mean = (weights * kl).sum() / count(weights.sum()).clamp_min(1e-8)
    loss = (1 - alpha) * negative_mean - alpha * positive_mean + beta * kl_mean
    metrics = {"pmpo_loss": float(loss.detach()), "kl_prior": float(kl_mean.detach()), "positive_fraction":
               float(positive.sum() / weights.sum().clamp_min(1e-8)), "logp_positive": float(positive_mean.detach()),
               "logp_negative": float(negative_mean.detach())}
    return loss, metrics
