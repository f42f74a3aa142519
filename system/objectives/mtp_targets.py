"""Multi-token-prediction targets of the policy and reward heads, aligned with replay steps, and their masks.

    actions, valid = future_steps(batch_actions, terminals, first=1, distances=L + 1)   # policy targets
    rewards, valid = future_steps(batch_rewards, terminals, first=0, distances=L + 1)   # reward targets

Index convention: replay step t holds frame t, the action that produced it, the reward received on arriving
at frame t and frame t's terminal flag; the agent feature h_t sees frame t and its action. From h_t:
- the policy's distance n (0..L) predicts the action of step t + 1 + n (first = 1),
- the reward head's distance n predicts the reward of step t + n (first = 0).
Target step s = t + first + n of row b is valid when s < T (inside the sampled sequence) and no frame in
t .. s - 1 is terminal (the episode has not ended before it). For the policy that also drops h_t of a terminal
frame t itself (it takes no action). Out: values (B, T, L + 1, ...) and valid (B, T, L + 1) bool.
"""

from __future__ import annotations

import torch


def future_steps(values: torch.Tensor, terminals: torch.Tensor, first: int,
                 distances: int) -> tuple[torch.Tensor, torch.Tensor]:
    """values (B, T, ...), terminals (B, T) bool -> (B, T, distances, ...) of step t + first + n, and valid."""
    b, t = terminals.shape
    device = terminals.device
    steps = torch.arange(t, device=device)
    target = steps[:, None] + first + torch.arange(distances, device=device)[None, :]     # (T, N)
    inside = target < t
    clamped = target.clamp(max=t - 1)
    # ended[b, s] = a terminal at some step < s: the cumulative count of terminals before s minus that before t
    before = torch.cat([torch.zeros(b, 1, dtype=torch.long, device=device), terminals.long().cumsum(1)], 1)
    ended = (before[:, clamped] - before[:, steps][:, :, None]) > 0                          # (B, T, N)
    valid = inside[None] & ~ended
    gathered = values[:, clamped.reshape(-1)].reshape(b, t, distances, *values.shape[2:])
    return gathered, valid
