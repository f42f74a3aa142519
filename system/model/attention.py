"""Multi-head attention with grouped-query heads, QK-norm, RoPE and logit soft-capping; two kernels.

    Attention(cfg)(x, rope, mask)      : x (N, L, D), rope = (cos, sin) (L, Dh/2) or (N, L, Dh/2) from rope.py,
                                         mask (L, L) bool or None -> (N, L, D)

N is a batch of independent sequences: B*T frames for a space layer (L = S tokens), B*S token positions for a
temporal layer (L = T frames). `mask[q, k]` True means query q may read key k.

Kernels (`TransformerConfig.attention`):
- "dense": explicit softmax(cap * tanh(q k^T / (cap sqrt(Dh)))) v in float32 with the boolean mask; the
  reference every other path is tested against, and the CPU default.
- "flex":  torch FlexAttention with a block mask and the soft-cap as score_mod, compiled on CUDA (eager,
  unfused, elsewhere: only for the agreement test). GQA is native (enable_gqa).
- "auto":  flex on CUDA, dense otherwise.

GQA: H query heads share H_kv key/value heads (H % H_kv == 0); queries are grouped, never K/V repeated,
so the cache holds only H_kv heads.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from system.model.rope import apply_rope


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale (no bias, no mean subtraction)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def dense_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, softcap: float
) -> torch.Tensor:
    """Reference kernel. q (N, H, Lq, Dh), k/v (N, H_kv, Lk, Dh), mask broadcastable to (N, 1, Lq, Lk)."""
    n, h, lq, dh = q.shape
    h_kv = k.shape[1]
    groups = h // h_kv
    # The 1 / sqrt(Dh) scale (and the soft-cap's 1 / cap) go on q, the small tensor, not on the scores.
    scale = 1.0 / (math.sqrt(dh) * (softcap if softcap > 0 else 1.0))
    qg = (q.float() * scale).view(n, h_kv, groups, lq, dh)
    scores = qg @ k.float().unsqueeze(2).transpose(-1, -2)  # (N, H_kv, G, Lq, Lk)
    if softcap > 0:
        scores = softcap * torch.tanh(scores)
    if mask is not None:
        if mask.dim() == 4:  # (N, 1, Lq, Lk) -> (N, 1, 1, Lq, Lk)
            mask = mask.unsqueeze(2)
        scores = scores.masked_fill(~mask, float("-inf"))
    out = scores.softmax(dim=-1) @ v.float().unsqueeze(2)
    return out.view(n, h, lq, dh).to(q.dtype)


_compiled_flex: Callable | None = None
# Distinct compiled kernels one process may hold: one per (sequence length, heads, head dim, mask), since the
# batch of sequences is a dynamic dimension. Past it compiling stops with an error instead of torch's default
# of silently running the slow uncompiled kernel from the 9th shape on.
FLEX_RECOMPILE_LIMIT = 32


def flex_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask, softcap: float, compiled: bool
) -> torch.Tensor:
    """FlexAttention kernel: block_mask from `block_mask_for`, soft-cap as a score modification.

    q, k, v are made contiguous first: inductor's flex kernel on CPU computed wrong values (errors of 0.3) from
    the strided K/V views `project` returns, also when flex runs inside a larger compiled graph.
    Compiled, the batch dimension N is dynamic: a training run feeds many batch sizes (short and long batches,
    single images, bootstrap rows), which would otherwise each compile a kernel and soon pass the limit."""
    from torch.nn.attention.flex_attention import flex_attention as flex

    global _compiled_flex
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    # Inside a graph that is being compiled already (a compiled frame step), flex is traced into that graph.
    compiled = compiled and not torch.compiler.is_compiling()
    fn = flex
    if compiled:
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex, dynamic=False)
        fn = _compiled_flex
        for x in (q, k, v):
            if x.shape[0] > 1:  # torch specialises sizes 0 and 1; a batch of one gets its own kernel
                torch._dynamo.mark_dynamic(x, 0)
    score_mod = None
    if softcap > 0:

        def score_mod(score, b, h, q_idx, kv_idx):
            return softcap * torch.tanh(score / softcap)

    if not compiled:
        return fn(q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=q.shape[1] != k.shape[1])
    with torch._dynamo.config.patch(recompile_limit=FLEX_RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True):
        return fn(q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=q.shape[1] != k.shape[1])


_block_masks: dict = {}


def block_mask_for(mask: torch.Tensor | None, mask_key, length: int, device: torch.device):
    """A FlexAttention block mask equal to the boolean (L, L) `mask` (None: full).

    Cached under `mask_key`, a hashable description of the mask (e.g. ("temporal", T, window)) chosen by the
    caller, so looking it up never reads the mask back from the device."""
    from torch.nn.attention.flex_attention import create_block_mask

    if mask is None:
        return None
    key = (mask_key, length, str(device))
    if key not in _block_masks:
        dense = mask.to(device)

        def mask_mod(b, h, q_idx, kv_idx):
            return dense[q_idx, kv_idx]

        _block_masks[key] = (dense, create_block_mask(mask_mod, None, None, length, length, device=device))
    return _block_masks[key][1]


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, softcap: float, kernel: str,
                 norm_eps: float = 1e-6):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads {num_heads} is not divisible by num_kv_heads {num_kv_heads}")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = dim // num_heads
        self.softcap, self.kernel = softcap, kernel
        self.q_proj = nn.Linear(dim, num_heads * self.head_dim, bias=False)
        self.kv_proj = nn.Linear(dim, 2 * num_kv_heads * self.head_dim, bias=False)
        self.out_proj = nn.Linear(num_heads * self.head_dim, dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim, norm_eps)
        self.k_norm = RMSNorm(self.head_dim, norm_eps)

    def project(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]):
        """x (N, L, D), rope = (cos, sin) (L, Dh/2) or (N, L, Dh/2) -> q (N, H, L, Dh), k and v (N, H_kv, L, Dh),
        q and k rotated."""
        n, length, _ = x.shape
        q = self.q_proj(x).view(n, length, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_proj(x).view(n, length, 2, self.num_kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = rope
        if cos.dim() == 3:  # per-sequence positions (N, L, Dh/2) -> broadcast over heads
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def attend(self, q, k, v, mask: torch.Tensor | None, mask_key=None) -> torch.Tensor:
        """Runs the configured kernel on projected heads; mask is (Lq, Lk) bool or None, described by mask_key."""
        use_flex = self.kernel == "flex" or (self.kernel == "auto" and q.is_cuda)
        if use_flex and q.shape[2] == k.shape[2]:
            block_mask = block_mask_for(mask, mask_key, q.shape[2], q.device)
            return flex_attention(q, k, v, block_mask, self.softcap, compiled=q.is_cuda)
        return dense_attention(q, k, v, mask, self.softcap)

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        """(N, H, L, Dh) -> (N, L, D) through the output projection."""
        n, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(n, length, -1))

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None,
                mask_key=None):
        q, k, v = self.project(x, rope)
        return self.merge(self.attend(q, k, v, mask, mask_key))
