"""Rotary position embeddings (RoPE, Su et al. 2021) in the half-split (GPT-NeoX) convention.

    cos, sin = rope_tables(positions, head_dim, base)   # positions (..., L) int or float -> (..., L, Dh/2)
    cos, sin = grid_rope_tables(coords, head_dim, base) # coords (..., L, 2) (row, col) -> (..., L, Dh/2)
    x = apply_rope(x, cos, sin)                          # x (N, H, L, Dh), cos/sin broadcastable to (N, 1, L, Dh/2)

Temporal layers rotate by the absolute frame index, so attention scores depend only on frame offsets and a ring
KV cache can hold keys rotated at their own frame. Space layers rotate by the token index inside the frame
(`space_positions: index`) or, axially in 2D, by the token's (row, col) on the patch grid (`grid`): the first
Dh/4 rotation pairs turn with the row, the last Dh/4 with the column, so a score depends on the 2D offset between
two tokens and "the patch above" is one offset wherever it is, where a raster index puts it 8 or 40 tokens away.
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


def grid_rope_tables(coords: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Axial 2D RoPE: coords (..., L, 2) float (row, col) -> cos, sin (..., L, Dh/2) for `apply_rope`."""
    if head_dim % 4:
        raise ValueError(f"2D RoPE needs a head dimension divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    inv_freq = base ** (-torch.arange(quarter, device=coords.device, dtype=torch.float32) / quarter)
    coords = coords.to(torch.float32)
    angles = torch.cat([coords[..., :1] * inv_freq, coords[..., 1:] * inv_freq], dim=-1)
    return angles.cos(), angles.sin()
