"""Rotary position embeddings (RoPE, Su et al. 2021) in the half-split (GPT-NeoX) convention.

    cos, sin = rope_tables(positions, head_dim, base)   # positions (..., L) int or float -> (..., L, Dh/2)
    x = apply_rope(x, cos, sin)                          # x (N, H, L, Dh), cos/sin broadcastable to (N, 1, L, Dh/2)

Space layers rotate by the token index inside the frame; temporal layers by the absolute frame index, so
attention scores depend only on frame offsets and a ring KV cache can hold keys rotated at their own frame.
"""

from __future__ import annotations

import torch


def rope_tables(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.to(torch.float32)[..., None] * inv_freq
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return rotated.to(x.dtype)
