"""Preallocated ring KV cache for frame-by-frame generation with the block-causal transformer.

Only temporal layers need a cache: space layers attend within the current frame. Each temporal layer keeps
keys and values of the last C frames (the context window) for every token position:

    k, v: (L_temporal, B, S, H_kv, C, Dh)   frame f lives in slot f % C, keys already rotated at frame f

Stepping frame t writes slot t % C in place (that slot held frame t - C, which has just left the window) and
attends over all C slots, masking the ones not yet written (`valid`). Frame indices are device tensors of
shape (B,), so a step has fixed shapes and no host synchronisation and can be captured in a CUDA graph; each
batch row may sit at its own frame (the world-model service batches episodes of different lengths).
Writing the same t again (several denoising steps of one frame) simply overwrites the slot; the last write wins.
`cache.rows(index)` is a view of some rows (n,) that steps only those episodes (the world-model service steps
the episodes that asked for an action, not every slot it holds): writes land in the parent's buffers, reads
gather the n rows.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(
        self,
        num_layers: int,
        batch: int,
        tokens: int,
        kv_heads: int,
        head_dim: int,
        window: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        if window < 1:
            raise ValueError(f"KV cache window must be at least 1 frame, got {window}")
        shape = (num_layers, batch, tokens, kv_heads, window, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.window = window
        self.batch_index = torch.arange(batch, device=device)
        self.slot_index = torch.arange(window, device=device)

    @property
    def batch(self) -> int:
        return self.k.shape[1]

    @property
    def tokens(self) -> int:
        return self.k.shape[2]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> None:
        """Stores one frame's keys/values (B, S, H_kv, Dh) at frame indices t (B,), in place."""
        slot = torch.remainder(t, self.window)
        self.k[layer][self.batch_index, :, :, slot] = k.to(self.k.dtype)
        self.v[layer][self.batch_index, :, :, slot] = v.to(self.v.dtype)

    def prefill(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Stores frames 0..T-1 (k, v: (B, S, H_kv, T, Dh)) of a fresh episode; only the last C are kept."""
        frames = k.shape[3]
        first = max(0, frames - self.window)
        slots = torch.arange(first, frames, device=k.device) % self.window
        self.k[layer][:, :, :, slots] = k[:, :, :, first:].to(self.k.dtype)
        self.v[layer][:, :, :, slots] = v[:, :, :, first:].to(self.v.dtype)

    def keys_values(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views (B*S, H_kv, C, Dh) of one layer's ring."""
        _, b, s, h, c, d = self.k.shape
        return self.k[layer].view(b * s, h, c, d), self.v[layer].view(b * s, h, c, d)

    def valid(self, t: torch.Tensor) -> torch.Tensor:
        """(B, C) bool: slots holding a frame in [t - C + 1, t] given frames 0..t were written in order."""
        return self.slot_index[None, :] <= t[:, None]

    def reset(self) -> None:
        self.k.zero_()
        self.v.zero_()

    def reset_rows(self, rows: torch.Tensor) -> None:
        """Clears the episodes of the rows where `rows` (B,) bool is set (a new episode starts in that slot)."""
        keep = (~rows).to(self.k.dtype)[None, :, None, None, None, None]
        self.k.mul_(keep)
        self.v.mul_(keep)

    def rows(self, index: torch.Tensor) -> "KVCacheRows":
        """A view of rows `index` (n,) long for stepping only those episodes; see KVCacheRows."""
        return KVCacheRows(self, index)


class KVCacheRows:
    """Rows `index` (n,) of a KVCache, with the interface the transformer steps through (batch n).

    write() stores into the parent's buffers in place; keys_values() gathers the n rows (a copy, which the
    attention reads once), so stepping a subset costs the subset, not the whole cache."""

    def __init__(self, cache: KVCache, index: torch.Tensor):
        self.cache, self.index = cache, index.to(cache.k.device, torch.long)
        self.window = cache.window

    @property
    def batch(self) -> int:
        return int(self.index.shape[0])

    @property
    def tokens(self) -> int:
        return self.cache.tokens

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> None:
        slot = torch.remainder(t, self.window)
        self.cache.k[layer][self.index, :, :, slot] = k.to(self.cache.k.dtype)
        self.cache.v[layer][self.index, :, :, slot] = v.to(self.cache.v.dtype)

    def keys_values(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, s, h, c, d = self.cache.k.shape
        n = self.batch
        return self.cache.k[layer][self.index].view(n * s, h, c, d), self.cache.v[layer][self.index].view(n * s, h, c, d)

    def valid(self, t: torch.Tensor) -> torch.Tensor:
        return self.cache.valid(t)
