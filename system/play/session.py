"""One player's imagined world: a KV-cache slot stepped by the cached sampler, one decoded frame per step.

    session = PlaySession(tokenizer, dynamics, GenerationConfig(context_noise=0.1), cache)
    session.start(frames, actions, seed=7)    # frames (T0, H, W, 3) uint8 real context, actions (T0, A) int
    frame = session.step(action, k=4)         # action (A,) int -> the next frame (H, W, 3) uint8
    session.t                                 # the frame index the next step generates

The maths is generation.py's and nothing else: the context frames are encoded with the tokenizer (one
causal pass over the T0 frames), packed, and prefilled at the context noise level; each step is one
`CachedSampler.step` (K shortcut steps, then the context pass that writes the frame into the cache), with the
sampler of the chosen K over this session's cache (cache= shares it, so K may change between frames).
The new latents are decoded over the last `decoder_receptive_field` frames (context ones included), which
equals decoding the whole episode at once (tests). Noise comes from the session's own generator, seeded at
start and drawn in a fixed order: the context noise (1, T0, N_z, D_z), then per frame the start noise and the
renoise (1, 1, N_z, D_z) each, so a seed, a context and an action sequence give the same frames whatever K
switches or other sessions happen in between.
"""

from __future__ import annotations

import numpy as np
import torch

from system.imagination.generation import CachedSampler, GenerationConfig
from system.model.kv_cache import KVCache


class PlaySession:
    def __init__(self, tokenizer, dynamics, generation: GenerationConfig, cache: KVCache):
        self.tokenizer, self.dynamics, self.generation, self.cache = tokenizer, dynamics, generation, cache
        param = next(dynamics.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.tokenizer_dtype = next(tokenizer.parameters()).dtype
        self.samplers: dict[int, CachedSampler] = {}
        self.window = tokenizer.cfg.decoder_receptive_field
        self.token_shape = (dynamics.cfg.packed_tokens, dynamics.cfg.packed_dim)
        self.generator = torch.Generator(device=self.device)
        self.recent: torch.Tensor | None = None    # (1, <= window, N_z, D_z) the latest packed latents
        self.t = 0

    def sampler(self, k: int) -> CachedSampler:
        if k not in self.samplers:
            cfg = GenerationConfig(sampling_steps=k, context_noise=self.generation.context_noise)
            self.samplers[k] = CachedSampler(self.dynamics, cfg, batch=1, device=self.device, dtype=self.dtype,
                                             cache=self.cache)
        return self.samplers[k]

    def _noise(self, frames: int) -> torch.Tensor:
        # drawn in float32 and cast, as generation.draw_noise does
        return torch.randn(1, frames, *self.token_shape, generator=self.generator, device=self.device).to(self.dtype)

    @torch.no_grad()
    def start(self, frames: np.ndarray, actions: np.ndarray, seed: int, k: int | None = None) -> None:
        """frames (T0, H, W, 3) uint8, actions (T0, A) int (-1: none); the next step generates frame T0."""
        self.generator.manual_seed(seed)
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).float().div_(255.0)
        z = self.dynamics.pack(self.tokenizer.encode(pixels[None]).to(self.dtype))       # (1, T0, N_z, D_z)
        actions = torch.from_numpy(np.asarray(actions)).to(self.device).long()[None]
        sampler = self.sampler(k or self.generation.sampling_steps)
        sampler.prefill(z, actions, self._noise(z.shape[1]))
        self.recent = z[:, -self.window:]
        self.t = z.shape[1]

    @torch.no_grad()
    def step(self, action: np.ndarray, k: int) -> np.ndarray:
        """action (A,) int: the action leading to the new frame -> that frame (H, W, 3) uint8."""
        if self.recent is None:
            raise RuntimeError("PlaySession.step before start")
        start, renoise = self._noise(1), self._noise(1)
        action = torch.from_numpy(np.asarray(action)).to(self.device).long().view(1, 1, -1)
        t = torch.full((1,), self.t, dtype=torch.long, device=self.device)
        z, _ = self.sampler(k).step(t, action, start, renoise)
        self.t += 1
        self.recent = torch.cat([self.recent, z], 1)[:, -self.window:]
        frame = self.tokenizer.decode(self.dynamics.unpack(self.recent).to(self.tokenizer_dtype))[0, -1]
        return frame.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
