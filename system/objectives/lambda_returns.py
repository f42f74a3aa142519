"""TD(lambda) returns of imagined trajectories (paper Eq. 10) and the loss weights after a predicted end.

    returns = lambda_returns(rewards, continues, values, gamma=0.997, lam=0.95)   # (B, H + 1) each -> (B, H)
    weights = alive_weights(continues)                                            # (B, H + 1) -> (B, H)

Index convention along an imagined trajectory: frame 0 is the last context frame, frame t+1 the frame the
action a_{t+1} (sampled from the policy on h_t) leads to. rewards[:, t] is the reward received on arriving
at frame t and continues[:, t] = 1 - terminal of frame t (both predicted from h_t), values[:, t] = v(h_t)
from the slow value head. Then, for t = 0 .. H-1,
    R_t = r_{t+1} + gamma * c_{t+1} * ((1 - lam) * v_{t+1} + lam * R_{t+1}),    R_H = v_H,
so no value flows past a terminal frame. The policy acts at h_t for t < H and is trained there with
advantage R_t - v_t; weights[:, t] = prod_{k<=t} c_k is 0 from a terminal frame on (no loss on the step
after an episode end, checklist 24), 1 while the episode lives (soft when c is a probability).
"""

from __future__ import annotations

import torch


def lambda_returns(rewards: torch.Tensor, continues: torch.Tensor, values: torch.Tensor,
                   gamma: float = 0.997, lam: float = 0.95) -> torch.Tensor:
    if not rewards.shape == continues.shape == values.shape or rewards.dim() != 2:
        raise ValueError(f"rewards, continues, values must all be (B, H + 1), got {tuple(rewards.shape)}, "
                         f"{tuple(continues.shape)}, {tuple(values.shape)}")
    horizon = rewards.shape[1] - 1
    out = []
    next_return = values[:, horizon]
    for t in reversed(range(horizon)):
        next_return = rewards[:, t + 1] + gamma * continues[:, t + 1] * (
            (1 - lam) * values[:, t + 1] + lam * next_return)
        out.append(next_return)
    return torch.stack(out[::-1], 1)


def alive_weights(continues: torch.Tensor) -> torch.Tensor:
    """(B, H + 1) -> (B, H): prod_{k<=t} c_k, the weight of the losses at h_t for t < H."""
    return torch.cumprod(continues[:, :-1], 1)
