"""Block-causal axial transformer shared by the tokenizer and the dynamics model (paper section 3.4).

    BlockCausalTransformer(cfg, layout)(x)                 x (B, T, S, D) -> (B, T, S, D)
    BlockCausalTransformer(cfg, layout)(x, cache)          same, and stores frames 0..T-1 in a fresh cache
    BlockCausalTransformer(cfg, layout)(x, cache, t)       x (B, 1, S, D) is frame t (B,) of each row

Every block is pre-norm: x += attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x)). Layers alternate axially:
- space layers attend over the S tokens of each frame (a batch of B*T sequences) under the layout's S x S
  modality mask; they never mix frames.
- every `temporal_every`-th layer is temporal: each token position attends causally over its own position in
  the last `context` frames (a batch of B*S sequences, banded causal T x T mask).
A (T*S) x (T*S) mask is never built. Frame t therefore sees frames <= t only, and inside frame t only what
the layout allows. Stepping with a KV cache gives the same result as a full forward over frames 0..t under
the same sliding window, because only temporal layers look at other frames and they keep keys in the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from system.model.attention import Attention, RMSNorm, dense_attention
from system.model.kv_cache import KVCache
from system.model.layout import TokenLayout
from system.model.rope import grid_rope_tables, rope_tables


@dataclass
class TransformerConfig:
    dim: int = 512
    depth: int = 8
    num_heads: int = 8
    num_kv_heads: int = 2          # GQA in all attention layers (paper 3.4); value not given, ours
    temporal_every: int = 4        # temporal attention only every 4th layer (paper 3.4, Table 2)
    context: int = 192             # C: frames a temporal layer sees, its own included (paper: 192 = 9.6 s)
    mlp_ratio: float = 4.0         # SwiGLU hidden = 2/3 * mlp_ratio * dim (rounded up to a multiple of 8)
    logit_softcap: float = 50.0    # attention logit soft-cap (paper: used; value not given)
    rope_base: float = 10000.0     # temporal RoPE, and space RoPE over token indices
    # Space-layer positions: "index" rotates by the token's index in the frame (1D); "grid" by its (row, col) on
    # the patch grid (2D axial RoPE, rope.py), given by the model that owns the layout (TokenLayout.grid_coords).
    # The paper says RoPE and no more; "grid" keeps neighbouring patches one offset apart in both directions.
    space_positions: Literal["index", "grid"] = "index"
    grid_rope_base: float = 10.0   # 2D RoPE base: frequencies 1 .. 10^(-3/4) rad per patch at Dh = 16
    norm_eps: float = 1e-6
    attention: Literal["auto", "dense", "flex"] = "auto"

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.num_kv_heads}")
        if (self.dim // self.num_heads) % 2:
            raise ValueError(f"head dim {self.dim // self.num_heads} must be even for RoPE")
        if self.temporal_every < 1 or self.depth < self.temporal_every:
            raise ValueError(f"depth {self.depth} must hold at least one temporal layer "
                             f"(temporal_every {self.temporal_every})")
        if self.context < 1:
            raise ValueError(f"context must be at least 1 frame, got {self.context}")
        if self.space_positions not in ("index", "grid"):
            raise ValueError(f"space_positions must be 'index' or 'grid', got {self.space_positions!r}")
        if self.space_positions == "grid" and self.head_dim % 4:
            raise ValueError(f"space_positions 'grid' (2D RoPE) needs a head dim divisible by 4, got {self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        hidden = int(2 * self.mlp_ratio * self.dim / 3)
        return (hidden + 7) // 8 * 8

    def is_temporal(self, layer: int) -> bool:
        return (layer + 1) % self.temporal_every == 0

    @property
    def num_temporal_layers(self) -> int:
        return sum(self.is_temporal(i) for i in range(self.depth))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg.dim, cfg.num_heads, cfg.num_kv_heads, cfg.logit_softcap, cfg.attention,
                              cfg.norm_eps)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.mlp_hidden)


def temporal_mask(frames: int, context: int, device=None) -> torch.Tensor:
    """(T, T) bool: frame i reads frame j iff i - context < j <= i (causal, sliding window of `context`)."""
    i = torch.arange(frames, device=device)[:, None]
    j = torch.arange(frames, device=device)[None, :]
    return (j <= i) & (j > i - context)


class BlockCausalTransformer(nn.Module):
    """grid_coords (S, 2): each token's (row, col) on the patch grid (TokenLayout.grid_coords), required with
    cfg.space_positions = "grid" and unused otherwise."""

    def __init__(self, cfg: TransformerConfig, layout: TokenLayout, grid_coords: torch.Tensor | None = None):
        super().__init__()
        self.cfg, self.layout = cfg, layout
        self.blocks = nn.ModuleList(Block(cfg, cfg.is_temporal(i)) for i in range(cfg.depth))
        self.final_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        space_mask = layout.space_mask()
        self.register_buffer("space_mask", None if layout.is_dense else space_mask, persistent=False)
        if cfg.space_positions == "grid":
            if grid_coords is None or tuple(grid_coords.shape) != (layout.num_tokens, 2):
                raise ValueError(f"space_positions 'grid' needs the (row, col) of each of the {layout.num_tokens} "
                                 f"tokens, got {None if grid_coords is None else tuple(grid_coords.shape)}")
            positions = grid_coords.float()
        else:
            positions = torch.arange(layout.num_tokens)
        self.register_buffer("space_positions", positions, persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if name.endswith("out_proj.weight") or name.endswith("down.weight"):
                    std = 0.02 / (2 * self.cfg.depth) ** 0.5  # residual branches, as in GPT-2
                nn.init.normal_(p, 0.0, std)

    def new_cache(self, batch: int, device=None, dtype: torch.dtype = torch.float32) -> KVCache:
        """An empty ring cache for `batch` episodes of this layout and context window."""
        cfg = self.cfg
        device = device if device is not None else self.space_positions.device
        return KVCache(cfg.num_temporal_layers, batch, self.layout.num_tokens, cfg.num_kv_heads, cfg.head_dim,
                       cfg.context, device, dtype)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
        b, frames, s, d = x.shape
        if s != self.layout.num_tokens:
            raise ValueError(f"expected {self.layout.num_tokens} tokens per frame (layout), got {s}")
        stepping = t is not None
        if stepping:
            if cache is None or frames != 1:
                raise ValueError("stepping frame t needs a KV cache and exactly one frame of input")
            time_mask = None
        else:
            time_mask = temporal_mask(frames, self.cfg.context, x.device)
        temporal_index = 0
        space_rope = self.space_rope()  # the same for every space layer
        for block in self.blocks:
            h = block.attn_norm(x)
            if block.temporal:
                h = h.transpose(1, 2).reshape(b * s, frames, d)
                if stepping:
                    h = self._temporal_step(block.attn, h, cache, temporal_index, t)
                else:
                    h = self._temporal_full(block.attn, h, time_mask, cache, temporal_index)
                h = h.view(b, s, frames, d).transpose(1, 2)
                temporal_index += 1
            else:
                h = block.attn(h.reshape(b * frames, s, d), space_rope, self.space_mask,
                               ("space", self.layout))
                h = h.view(b, frames, s, d)
            x = x + h
            x = x + block.mlp(block.mlp_norm(x))
        return self.final_norm(x)

    def space_rope(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) (S, Dh/2) of the space layers: 1D over token indices or 2D over grid coordinates."""
        cfg = self.cfg
        if cfg.space_positions == "grid":
            return grid_rope_tables(self.space_positions, cfg.head_dim, cfg.grid_rope_base)
        return rope_tables(self.space_positions, cfg.head_dim, cfg.rope_base)

    def _temporal_full(self, attn: Attention, h, mask, cache: KVCache | None, layer: int):
        frames = h.shape[1]
        positions = torch.arange(frames, device=h.device)
        q, k, v = attn.project(h, rope_tables(positions, self.cfg.head_dim, self.cfg.rope_base))
        if cache is not None:
            b, s = cache.batch, cache.tokens
            cache.prefill(layer, k.view(b, s, *k.shape[1:]), v.view(b, s, *v.shape[1:]))
        return attn.merge(attn.attend(q, k, v, mask, ("temporal", frames, self.cfg.context)))

    def _temporal_step(self, attn: Attention, h, cache: KVCache, layer: int, t: torch.Tensor):
        b, s = cache.batch, cache.tokens
        positions = t[:, None].expand(b, s).reshape(b * s, 1)  # row b*S + j is token j of episode b
        q, k, v = attn.project(h, rope_tables(positions, self.cfg.head_dim, self.cfg.rope_base))
        cache.write(layer, k.view(b, s, *k.shape[1:])[:, :, :, 0], v.view(b, s, *v.shape[1:])[:, :, :, 0], t)
        keys, values = cache.keys_values(layer)
        valid = cache.valid(t)[:, None].expand(b, s, -1).reshape(b * s, 1, 1, -1)  # (B*S, 1, 1, C)
        return attn.merge(dense_attention(q, keys, values, valid, attn.softcap))
