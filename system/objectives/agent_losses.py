"""Phase 2 agent losses (paper Eq. 9): behaviour cloning and reward prediction, both with multi-token prediction.

    bc, m = behaviour_cloning_loss(heads.policy(h), actions, terminals)     # h (B, T, S_g, D); actions (B, T, A)
    rew, m = reward_loss(heads.reward, h, rewards, terminals)               # rewards (B, T) float
    con, m = continuation_loss(heads.continuation, h, terminals)

BC: -sum_{n=0}^{L} ln pi_n(a_{t+1+n} | h_t); reward: -sum_{n=0}^{L} ln p_n(r_{t+n} | h_t) (two-hot cross
entropy); targets and masks from mtp_targets.future_steps (sequence end, episode end; unlabeled action
components, -1, are masked per component). Each sum over distances is averaged over the valid (row, step)
pairs: one number per term, which the trainer divides by its running RMS.

Data parallel: `rank_mean` (the mean over ranks, system/training/data_parallel.py) makes the count of valid
pairs the group's: each rank divides its sum by the mean count over ranks, so the gradients averaged over
ranks are those of the mean over the whole global batch, however the valid pairs fall on the ranks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from system.model.policy_head import FactoredPolicy
from system.objectives.mtp_targets import future_steps

RankMean = Callable[[torch.Tensor], torch.Tensor]


def _masked_mean_of_sums(per_target: torch.Tensor, valid: torch.Tensor, rank_mean: RankMean | None = None):
    """(B, T, N) losses -> sum over distances, mean over (b, t) with at least one valid target."""
    weight = valid.to(per_target.dtype)
    count = valid.any(-1).sum()
    if rank_mean is None:
        return (per_target * weight).sum(-1).sum() / count.clamp_min(1)
    # the mean count over ranks: 0 only when no rank has a valid pair, and then every sum is 0 too
    return (per_target * weight).sum(-1).sum() / rank_mean(count.to(per_target.dtype)).clamp_min(1e-6)


def behaviour_cloning_loss(dist: FactoredPolicy, actions: torch.Tensor, terminals: torch.Tensor,
                           rank_mean: RankMean | None = None) -> tuple[torch.Tensor, dict]:
    """dist: batch shape (B, T, L + 1); actions (B, T, A) int, -1 = unlabeled; terminals (B, T) bool."""
    distances = dist.logits[0].shape[-2]
    target, valid = future_steps(actions, terminals, first=1, distances=distances)       # (B, T, N, A)
    labeled = (target >= 0) & valid[..., None]
    nll = -(dist.component_log_probs(target) * labeled).sum(-1)                           # (B, T, N)
    loss = _masked_mean_of_sums(nll, labeled.any(-1), rank_mean)
    with torch.no_grad():
        now = labeled[:, :, 0].all(-1)
        hit = (dist.select((slice(None), slice(None), 0)).mode() == target[:, :, 0]).all(-1)
        accuracy = (hit & now).sum() / now.sum().clamp_min(1)
    return loss, {"bc_nll": float(loss.detach()), "bc_accuracy": float(accuracy)}


def reward_loss(reward_head, h: torch.Tensor, rewards: torch.Tensor, terminals: torch.Tensor,
                rank_mean: RankMean | None = None) -> tuple[torch.Tensor, dict]:
    logits = reward_head(h)                                                                # (B, T, N, bins)
    target, valid = future_steps(rewards, terminals, first=0, distances=logits.shape[-2])
    ce = reward_head.bins.cross_entropy(logits, target)
    loss = _masked_mean_of_sums(ce, valid, rank_mean)
    return loss, {"reward_ce": float(loss.detach())}


def continuation_loss(continuation_head, h: torch.Tensor, terminals: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Binary cross entropy of c_t = 1 - terminal_t from h_t (every step of the sequence)."""
    logits = continuation_head(h)
    loss = F.binary_cross_entropy_with_logits(logits.float(), (~terminals).float())
    return loss, {"continuation_bce": float(loss.detach())}
