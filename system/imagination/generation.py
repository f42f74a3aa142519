"""Autoregressive world-model generation with a ring KV cache (paper section 3.2, "inference"; checklist 2, 5, 11).

    out = rollout(model, GenerationConfig(), context_z, context_actions, actions, generator=g)
    out.z       (B, H, N_z, D_z)   generated packed latents of H new frames
    out.agent   (B, H, S_g, D)     agent-token features of each generated frame (what the policy reads)
    out.frames  (B, H, h, w, 3)    decoded frames, when a tokenizer is given (decoded after the context)

context_z (B, T0, N_z, D_z) are real (clean, packed) latents of the first T0 frames, context_actions (B, T0, A)
their actions, actions (B, H, A) the action that produces each new frame (the shared step convention: step t
holds frame t and the action that led to it; -1 = no label). T0 = 0 generates from no context (start frames).

Per new frame t (one world-model step, `CachedSampler.step`):
    z ~ N(0, I)
    for k in 0..K-1:  tau = k/K, d = 1/K                 # exactly the training grid, conditioned on the tau it is AT
        z1_hat = f(z, tau, d, a_t)                        # writes ring slot t % C (overwritten each pass)
        z = z + (z1_hat - z) / (1 - tau) * d              # Euler step of the x-prediction's velocity
    f(renoise(z, tau_ctx), tau_ctx, d_min, a_t)           # the cache entry frame t+1 reads; agent features
The context level: the paper's "tau_ctx = 0.1" is read as a SMALL corruption, noise amount 0.1, i.e. signal
level 0.9, snapped to the K_max grid (round(0.9 K_max) / K_max = 58/64 at K_max = 64) with d = d_min, so every
(tau, d) fed to the model lies on the training grid. Context prefill: the real context frames re-noised to the
same level, in one full forward that also fills the cache.

Only temporal layers keep keys/values, in preallocated (L_t, B, S, H_kv, C, Dh) buffers written in place
(system/model/kv_cache.py). `step` has fixed shapes, takes frame indices as a device tensor (B,) and never reads a
value back to the host, so one frame step can be compiled with torch.compile(fullgraph=True) or captured in a
CUDA graph (static input tensors copied in, the cache buffers mutated in place).

`rollout_uncached` is the reference: every pass runs the full model over [re-noised context..., current
frame] with the same noise under the same sliding window C; it equals the cached rollout (tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from system.model.action_embedding import no_action_like
from system.model.kv_cache import KVCache
from system.objectives.shortcut import noise_latents


@dataclass
class GenerationConfig:
    sampling_steps: int = 4        # K shortcut steps per frame, d = 1/K (paper: 4); a power of two <= K_max
    context_noise: float = 0.1     # paper tau_ctx = 0.1 read as noise amount 0.1 (signal level 0.9), snapped
                                   # to the K_max grid: round((1 - 0.1) K_max) / K_max, fed with d = d_min

    def __post_init__(self) -> None:
        k = self.sampling_steps
        if k < 1 or k & (k - 1):
            raise ValueError(f"sampling_steps must be a power of two (d = 1/K on the grid), got {k}")
        if not 0.0 <= self.context_noise <= 1.0:
            raise ValueError(f"context_noise must be in [0, 1], got {self.context_noise}")


def context_signal(k_max: int, context_noise: float) -> float:
    """Signal level of context frames on the K_max grid. tau = 1 is never an input (the tau embedding has K_max
    rows, 0..K_max-1), so context_noise = 0 maps to the cleanest trained level (K_max - 1) / K_max."""
    index = min(round((1.0 - context_noise) * k_max), k_max - 1)
    return index / k_max


class RolloutNoise(NamedTuple):
    context: torch.Tensor   # (B, T0, N_z, D_z) re-noises the real context frames
    start: torch.Tensor     # (B, H, N_z, D_z) z ~ N(0, I) each new frame starts from
    renoise: torch.Tensor   # (B, H, N_z, D_z) re-noises each finished frame to the context level


def draw_noise(batch: int, context_frames: int, horizon: int, token_shape: tuple[int, int],
               generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32) -> RolloutNoise:
    def draw(frames):  # drawn in float32 and cast, so a seed gives the same noise in every dtype
        return torch.randn(batch, frames, *token_shape, generator=generator, device=device).to(dtype)
    return RolloutNoise(draw(context_frames), draw(horizon), draw(horizon))


class RolloutOutput(NamedTuple):
    z: torch.Tensor                  # (B, H, N_z, D_z)
    agent: torch.Tensor | None       # (B, H, S_g, D)
    frames: torch.Tensor | None      # (B, H, h, w, 3) decoded, when asked


class CachedSampler:
    """Holds one ring KV cache for `batch` episodes and steps frames through it.

    `cache` (a KVCache of `batch` rows) makes the sampler step an existing cache instead of a new one: samplers
    with different K can then take turns on one episode (the play page changes K mid-episode). Each frame's
    cache entry is written by its final context pass, which is the same for every K."""

    def __init__(self, model, cfg: GenerationConfig, batch: int, device=None, dtype: torch.dtype = torch.float32,
                 cache: KVCache | None = None):
        if cfg.sampling_steps > model.k_max:
            raise ValueError(f"sampling_steps K={cfg.sampling_steps} exceeds the trained K_max={model.k_max}")
        if cache is not None and cache.batch != batch:
            raise ValueError(f"the given KV cache holds {cache.batch} rows, the sampler steps {batch}")
        self.model, self.cfg, self.batch = model, cfg, batch
        device = device if device is not None else next(model.parameters()).device
        self.cache = cache if cache is not None else model.transformer.new_cache(batch, device, dtype)
        k = cfg.sampling_steps
        # Constants built once: the per-frame step creates no tensors from Python numbers.
        self.step_taus = [torch.full((batch, 1), i / k, device=device) for i in range(k)]
        self.step_d = torch.full((batch, 1), 1.0 / k, device=device)
        # Euler step z += (z1_hat - z) * d / (1 - tau), one factor per pass, in the latents' dtype
        self.step_scales = [torch.full((batch, 1, 1, 1), (1.0 / k) / (1 - i / k), device=device, dtype=dtype)
                            for i in range(k)]
        self.context_tau = context_signal(model.k_max, cfg.context_noise)
        self.ctx_tau = torch.full((batch, 1), self.context_tau, device=device)
        self.ctx_d = torch.full((batch, 1), 1.0 / model.k_max, device=device)

    def prefill(self, context_z: torch.Tensor, actions: torch.Tensor | None, noise: torch.Tensor,
                task: torch.Tensor | None = None) -> torch.Tensor | None:
        """Starts fresh episodes from T0 real context frames (B, T0, N_z, D_z); returns their agent features.
        The next frame to step is t = T0."""
        self.cache.reset()
        frames = context_z.shape[1]
        if frames == 0:
            return None
        tau = self.ctx_tau.expand(-1, frames)
        z = noise_latents(context_z, noise, tau)
        return self.model(z, tau, self.ctx_d.expand(-1, frames), actions, task, cache=self.cache).agent

    def step(self, t: torch.Tensor, action: torch.Tensor | None, start: torch.Tensor, renoise: torch.Tensor,
             task: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generates frame t (B,) of every row: action (B, 1, A) (the action leading to frame t), start and
        renoise noise (B, 1, N_z, D_z). Returns (z1 (B, 1, N_z, D_z), agent (B, 1, S_g, D) or None)."""
        model, d = self.model, self.step_d
        z = start
        for tau, scale in zip(self.step_taus, self.step_scales):
            z1_hat = model(z, tau, d, action, task, cache=self.cache, t=t).z1
            z = z + (z1_hat - z) * scale
        context = noise_latents(z, renoise, self.ctx_tau)
        agent = model(context, self.ctx_tau, self.ctx_d, action, task, cache=self.cache, t=t).agent
        return z, agent


def _frames_out(model, context_z: torch.Tensor, z: torch.Tensor, tokenizer) -> torch.Tensor | None:
    """Decodes the generated frames after the real context latents (the tokenizer decoder is causal in time,
    so the generated frames are decoded with their context, as a real episode would be)."""
    if tokenizer is None:
        return None
    frames = context_z.shape[1]
    return tokenizer.decode(model.unpack(torch.cat([context_z, z], 1)))[:, frames:]


def _fresh(x: torch.Tensor) -> torch.Tensor:
    """A copy with default strides: every frame then hands `step` inputs of identical shape AND strides, so a
    compiled (or CUDA-graph captured) step is reused instead of recompiled for each horizon length."""
    return x.new_empty(x.shape).copy_(x)


@torch.no_grad()
def rollout(model, cfg: GenerationConfig, context_z: torch.Tensor, context_actions: torch.Tensor | None,
            actions: torch.Tensor | None, horizon: int | None = None, noise: RolloutNoise | None = None,
            generator: torch.Generator | None = None, task: torch.Tensor | None = None,
            tokenizer=None, sampler: CachedSampler | None = None) -> RolloutOutput:
    """Cached frame-by-frame generation of `horizon` (default actions.shape[1]) new frames."""
    b, t0 = context_z.shape[:2]
    horizon = actions.shape[1] if horizon is None else horizon
    if noise is None:
        noise = draw_noise(b, t0, horizon, context_z.shape[2:], generator, context_z.device, context_z.dtype)
    # the cache holds keys and values the model computes: its dtype is the model's, not float32
    sampler = sampler or CachedSampler(model, cfg, b, context_z.device, dtype=next(model.parameters()).dtype)
    sampler.prefill(context_z, context_actions, noise.context, task)
    t = torch.full((b,), t0, dtype=torch.long, device=context_z.device)
    zs, agents = [], []
    for h in range(horizon):
        action = _fresh(actions[:, h:h + 1]) if actions is not None else None
        z, agent = sampler.step(t, action, _fresh(noise.start[:, h:h + 1]), _fresh(noise.renoise[:, h:h + 1]), task)
        zs.append(z)
        agents.append(agent)
        t = t + 1
    z = torch.cat(zs, 1)
    agent = torch.cat(agents, 1) if agents and agents[0] is not None else None
    return RolloutOutput(z, agent, _frames_out(model, context_z, z, tokenizer))


@torch.no_grad()
def rollout_uncached(model, cfg: GenerationConfig, context_z: torch.Tensor, context_actions: torch.Tensor | None,
                     actions: torch.Tensor | None, noise: RolloutNoise, horizon: int | None = None,
                     task: torch.Tensor | None = None, tokenizer=None) -> RolloutOutput:
    """Reference without a cache: full forwards over [re-noised context..., current frame] for every pass."""
    b, t0 = context_z.shape[:2]
    horizon = actions.shape[1] if horizon is None else horizon
    k, k_max = cfg.sampling_steps, model.k_max
    tau_ctx, d_min = context_signal(k_max, cfg.context_noise), 1.0 / k_max
    device = context_z.device

    def full(frames, value):
        return torch.full((b, frames), value, device=device)

    all_actions = _action_history(context_actions, actions, b, t0, horizon)   # (B, T0 + H, A) or None
    context = noise_latents(context_z, noise.context, full(t0, tau_ctx))
    zs, agents = [], []
    for h in range(horizon):
        n = t0 + h  # frames already in the context
        seq_actions = all_actions[:, :n + 1] if all_actions is not None else None
        z = noise.start[:, h:h + 1]
        for i in range(k):
            tau = torch.cat([full(n, tau_ctx), full(1, i / k)], 1)
            d = torch.cat([full(n, d_min), full(1, 1.0 / k)], 1)
            z1_hat = model(torch.cat([context, z], 1), tau, d, seq_actions, task).z1[:, -1:]
            z = z + (z1_hat - z) * ((1.0 / k) / (1 - i / k))
        zs.append(z)
        context = torch.cat([context, noise_latents(z, noise.renoise[:, h:h + 1], full(1, tau_ctx))], 1)
        out = model(context, full(n + 1, tau_ctx), full(n + 1, d_min), seq_actions, task)
        agents.append(out.agent[:, -1:] if out.agent is not None else None)
    z = torch.cat(zs, 1)
    agent = torch.cat(agents, 1) if agents and agents[0] is not None else None
    return RolloutOutput(z, agent, _frames_out(model, context_z, z, tokenizer))


def _action_history(context_actions, actions, b: int, t0: int, horizon: int) -> torch.Tensor | None:
    """Context and future actions as one (B, T0 + H, A) tensor; a missing part is unlabeled (-1 / NaN), which
    embeds exactly as None does (the base embedding only)."""
    if context_actions is None and actions is None:
        return None
    like = actions if actions is not None else context_actions
    if context_actions is None:
        context_actions = no_action_like(like[:, :1]).expand(b, t0, -1)
    if actions is None:
        actions = no_action_like(like[:, :1]).expand(b, horizon, -1)
    return torch.cat([context_actions, actions], 1)


def sampling_grid(k: int) -> list[tuple[float, float]]:
    """The (tau, d) pairs one frame walks with K steps: (0, 1/K), (1/K, 1/K), ..., ((K-1)/K, 1/K)."""
    if k < 1 or 2 ** int(math.log2(k)) != k:
        raise ValueError(f"K must be a power of two, got {k}")
    return [(i / k, 1.0 / k) for i in range(k)]
