"""Dynamics model of Dreamer 4 (paper section 3.2 and App. A): x-prediction of clean tokenizer latents.

    model = Dynamics(cfg, action_space)             # action_space.components: see system/model/action_embedding.py
    z = model.pack(tokenizer.encode(frames))        # (B, T, N_b, D_b) -> (B, T, N_z, D_z), D_z = N_b * D_b / N_z
    out = model(z_noisy, tau, d, actions)           # tau, d (B, T) on the grid; actions (B, T, A) or None
    out.z1                                          # (B, T, N_z, D_z) predicted clean latents (x-prediction)
    out.agent                                       # (B, T, S_g, D) agent-token features (None if S_g = 0)
    model(z, tau, d, actions, cache=c, t=t)         # one frame (B, 1, ...) at frame indices t (B,), see generation.py

Tokens per frame (system/model/layout.py order):
    [latents x N_z | registers x S_r | signal x 1 | actions x S_a | agent x S_g]
- latents: linear projection of the packed noisy latents z~ = (1 - tau) z0 + tau z1 (z0 ~ N(0, I) noise,
  z1 clean; tau = 0 pure noise, tau = 1 clean: the paper's convention, Eq. 3).
- registers: S_r learned tokens, the same in every frame.
- signal: ONE token for (tau, d): a discrete embedding of tau on the K_max grid (index tau * K_max in
  0..K_max-1; tau = 1 never occurs as an input) concatenated channel-wise with a discrete embedding of
  log2(1/d) (0..log2 K_max), projected to model width.
- actions: ActionEmbedding (per component, summed with a learned base; unlabeled frames get the base only).
- agent: a learned base plus a task embedding (phase 2+). Agent tokens read everything and nothing reads them
  (enforced by TokenLayout), so they never change the latent prediction.
All modalities except agent read each other inside a frame; across frames the transformer is block-causal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn

from system.model.action_embedding import ActionEmbedding
from system.model.grid_positions import latent_coords, packed_coords
from system.model.layout import TokenLayout
from system.model.transformer import BlockCausalTransformer, TransformerConfig


@dataclass
class DynamicsConfig:
    transformer: TransformerConfig = field(default_factory=TransformerConfig)  # context C = 192 (paper)
    latent_tokens: int = 512       # N_b, tokenizer bottleneck tokens (paper App. A: 512 x 16); must match it
    latent_dim: int = 16           # D_b, tokenizer bottleneck channels
    packed_tokens: int = 256       # N_z spatial tokens of the dynamics (paper App. A: 512 x 16 -> 256 x 32)
    registers: int = 4             # S_r; paper: used, count not given; 4 as in public reimplementations
    action_tokens: int = 1         # S_a; paper: not given; 1 as in public reimplementations
    agent_tokens: int = 1          # S_g; paper: not given (used from phase 2); 0 drops the segment
    num_tasks: int = 20            # task embedding rows (paper Table 4: 20 Minecraft tasks); task -1 = none
    k_max: int = 64                # K_max: finest step d_min = 1/K_max (paper: not stated; Fig. 8 suggests 64)
    # The tokenizer's patch grid (rows, cols): with transformer.space_positions "grid" the latent tokens get 2D
    # RoPE coordinates on it (each packed token at the mean of its latents; grid_positions.py). Must match the
    # tokenizer (check_matches_tokenizer); (0, 0) with "index" positions.
    patch_grid: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.latent_tokens % self.packed_tokens:
            raise ValueError(f"latent_tokens N_b={self.latent_tokens} must be divisible by packed_tokens "
                             f"N_z={self.packed_tokens}")
        if self.k_max < 1 or self.k_max & (self.k_max - 1):
            raise ValueError(f"k_max must be a power of two, got {self.k_max}")
        if self.transformer.space_positions == "grid" and min(self.patch_grid) < 1:
            raise ValueError("dynamics transformer.space_positions 'grid' needs patch_grid = the tokenizer's "
                             f"patch grid (rows, cols), got {tuple(self.patch_grid)}")

    @property
    def packed_dim(self) -> int:
        """D_z = N_b * D_b / N_z (paper: 32)."""
        return self.latent_tokens * self.latent_dim // self.packed_tokens


def check_matches_tokenizer(cfg: DynamicsConfig, tokenizer_cfg) -> None:
    """Raises if the dynamics latents do not match the tokenizer bottleneck (num_latents x latent_dim) or, with
    grid positions, its patch grid."""
    if (cfg.latent_tokens, cfg.latent_dim) != (tokenizer_cfg.num_latents, tokenizer_cfg.latent_dim):
        raise ValueError(f"dynamics.model.latent_tokens x latent_dim = {cfg.latent_tokens} x {cfg.latent_dim} must equal "
                         f"tokenizer.model.num_latents x latent_dim = {tokenizer_cfg.num_latents} x "
                         f"{tokenizer_cfg.latent_dim}")
    if cfg.transformer.space_positions == "grid" and tuple(cfg.patch_grid) != tuple(tokenizer_cfg.grid):
        raise ValueError(f"dynamics.model.patch_grid = {tuple(cfg.patch_grid)} must equal the tokenizer's patch grid "
                         f"{tuple(tokenizer_cfg.grid)} (image_size / patch_size)")


def dynamics_grid_coords(cfg: DynamicsConfig) -> torch.Tensor | None:
    """(S, 2) patch-grid coordinates of the dynamics tokens (2D space RoPE), None with index positions."""
    if cfg.transformer.space_positions != "grid":
        return None
    latents = latent_coords(cfg.latent_tokens, tuple(cfg.patch_grid))
    packed = packed_coords(latents, cfg.latent_tokens // cfg.packed_tokens)
    return dynamics_layout(cfg).grid_coords({"latents": packed})


class DynamicsOutput(NamedTuple):
    z1: torch.Tensor                  # (B, T, N_z, D_z) predicted clean latents
    agent: torch.Tensor | None        # (B, T, S_g, D) agent-token outputs (what policy/reward heads read)


def dynamics_layout(cfg: DynamicsConfig) -> TokenLayout:
    everything = "*"  # every modality except agent: TokenLayout never lets anyone read agent tokens
    return TokenLayout.build(
        {"latents": cfg.packed_tokens, "registers": cfg.registers, "signal": 1,
         "actions": cfg.action_tokens, "agent": cfg.agent_tokens},
        {"latents": everything, "registers": everything, "signal": everything, "actions": everything})


class Dynamics(nn.Module):
    def __init__(self, cfg: DynamicsConfig, action_space=None):
        super().__init__()
        self.cfg = cfg
        self.k_max = cfg.k_max
        self.layout = dynamics_layout(cfg)
        dim = cfg.transformer.dim
        self.transformer = BlockCausalTransformer(cfg.transformer, self.layout, dynamics_grid_coords(cfg))
        self.latent_in = nn.Linear(cfg.packed_dim, dim)
        self.latent_out = nn.Linear(dim, cfg.packed_dim)
        self.registers = nn.Parameter(torch.randn(cfg.registers, dim) * 0.02) if cfg.registers else None
        self.tau_embed = nn.Embedding(cfg.k_max, dim)                          # tau index 0..K_max-1
        self.step_embed = nn.Embedding(int(math.log2(cfg.k_max)) + 1, dim)     # log2(1/d) 0..log2 K_max
        self.signal_proj = nn.Linear(2 * dim, dim)
        components: Sequence = action_space.components if action_space is not None else ()
        self.actions = ActionEmbedding(components, dim, cfg.action_tokens)
        if cfg.agent_tokens:
            self.agent_base = nn.Parameter(torch.randn(cfg.agent_tokens, dim) * 0.02)
            self.task_embed = nn.Embedding(max(cfg.num_tasks, 1), cfg.agent_tokens * dim)
        for emb in (self.tau_embed, self.step_embed):
            nn.init.normal_(emb.weight, 0.0, 0.02)
        self.slices = {name: self.layout.slice(name) for name in self.layout.modalities}

    # -- latents <-> tokens ---------------------------------------------------------------------------------
    def pack(self, z: torch.Tensor) -> torch.Tensor:
        """Tokenizer latents (..., N_b, D_b) -> packed (..., N_z, D_z): N_b / N_z consecutive latents per token."""
        cfg = self.cfg
        return z.reshape(*z.shape[:-2], cfg.packed_tokens, cfg.packed_dim)

    def unpack(self, z: torch.Tensor) -> torch.Tensor:
        """Packed (..., N_z, D_z) -> tokenizer latents (..., N_b, D_b); the inverse of `pack`."""
        cfg = self.cfg
        return z.reshape(*z.shape[:-2], cfg.latent_tokens, cfg.latent_dim)

    def signal_indices(self, tau: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tau, d) on the grid -> (tau * K_max, log2(1/d)) as int64; clamped, never read back to the host."""
        tau_index = torch.round(tau * self.k_max).long().clamp(0, self.k_max - 1)
        step_index = torch.round(-torch.log2(d)).long().clamp(0, self.step_embed.num_embeddings - 1)
        return tau_index, step_index

    def signal_token(self, tau: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """tau, d (B, T) -> (B, T, 1, D)."""
        tau_index, step_index = self.signal_indices(tau, d)
        both = torch.cat([self.tau_embed(tau_index), self.step_embed(step_index)], dim=-1)
        return self.signal_proj(both).unsqueeze(2)

    def tokens(self, z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor, actions: torch.Tensor | None,
               task: torch.Tensor | None) -> torch.Tensor:
        """Builds the (B, T, S, D) input of the transformer in layout order."""
        b, t = z.shape[:2]
        dim = self.cfg.transformer.dim
        parts = [self.latent_in(z)]
        if self.registers is not None:
            parts.append(self.registers.expand(b, t, -1, -1))
        parts.append(self.signal_token(tau, d))
        parts.append(self.actions(actions, (b, t)))
        if self.cfg.agent_tokens:
            agent = self.agent_base.expand(b, t, -1, -1)
            if task is not None:  # task (B,) or (B, T) int, -1 = no task: base embedding only
                task = task[:, None].expand(b, t) if task.dim() == 1 else task
                has_task = (task >= 0).unsqueeze(-1).to(agent.dtype)
                task_rows = self.task_embed(task.clamp_min(0)) * has_task
                agent = agent + task_rows.view(b, t, self.cfg.agent_tokens, dim)
            parts.append(agent)
        x = torch.cat(parts, dim=2)
        return x

    def forward(self, z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor, actions: torch.Tensor | None = None,
                task: torch.Tensor | None = None, cache=None, t: torch.Tensor | None = None) -> DynamicsOutput:
        """z (B, T, N_z, D_z) noisy packed latents at signal levels tau (B, T) with step sizes d (B, T).

        Without `t`: full forward over frames 0..T-1 (and, with `cache`, prefill a fresh cache with them).
        With `t` (B,): z is one frame (T = 1) at frame index t of each row, stepped through the ring cache."""
        h = self.transformer(self.tokens(z, tau, d, actions, task), cache, t)
        z1 = self.latent_out(h[:, :, self.slices["latents"]])
        agent = h[:, :, self.slices["agent"]] if self.cfg.agent_tokens else None
        return DynamicsOutput(z1, agent)
