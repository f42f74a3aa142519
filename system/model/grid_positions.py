"""Where each spatial token sits on the frame's patch grid: the (row, col) coordinates of 2D space RoPE.

    coords = patch_coords((8, 8))                      # (64, 2): patch i at (i // 8, i % 8)
    coords = latent_coords(512, (24, 40))              # (512, 2): latents on a 16 x 32 grid spread over 24 x 40
    coords = packed_coords(latent_coords(...), 2)      # (256, 2): a packed token at the mean of its latents

Coordinates are floats in patch units. Latent tokens that are as many as the patches sit exactly on them (one
latent per patch); otherwise they form their own grid, of the aspect ratio nearest the frame's, stretched over
the patch grid, so a latent's nearest patches are the ones it is placed among. The dynamics model packs
consecutive latents into one token (paper App. A: 512 x 16 -> 256 x 32); a packed token sits at the mean of its
latents' coordinates. Which tokens get these coordinates, and where the non-spatial ones go, is the layout's
business (TokenLayout.grid_coords).
"""

from __future__ import annotations

import math

import torch


def patch_coords(grid: tuple[int, int]) -> torch.Tensor:
    """(rows * cols, 2) float: the (row, col) of each patch in raster order (the order of patchify)."""
    rows, cols = grid
    index = torch.arange(rows * cols, device="cpu")
    return torch.stack([index // cols, index % cols], -1).float()


def latent_grid_shape(num_latents: int, grid: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) with rows * cols = num_latents and cols / rows nearest the patch grid's aspect ratio."""
    rows, cols = grid
    ideal = math.sqrt(num_latents * cols / rows)
    divisors = [d for d in range(1, num_latents + 1) if num_latents % d == 0]
    latent_cols = min(divisors, key=lambda d: abs(math.log(d / ideal)))
    return num_latents // latent_cols, latent_cols


def latent_coords(num_latents: int, grid: tuple[int, int]) -> torch.Tensor:
    """(num_latents, 2) float: latent tokens on their own grid stretched over the patch grid; with as many
    latents as patches, exactly the patch coordinates."""
    rows, cols = grid
    latent_rows, latent_cols = latent_grid_shape(num_latents, grid)
    cells = patch_coords((latent_rows, latent_cols))
    scale = torch.tensor([rows / latent_rows, cols / latent_cols], device="cpu")
    return (cells + 0.5) * scale - 0.5  # cell centres; the identity when the grids are the same


def packed_coords(coords: torch.Tensor, per_token: int) -> torch.Tensor:
    """(N, 2) latent coordinates -> (N / per_token, 2): each packed token at the mean of its latents."""
    if len(coords) % per_token:
        raise ValueError(f"{len(coords)} latents do not pack into tokens of {per_token}")
    return coords.view(-1, per_token, 2).mean(1)
