"""Acting in a real environment: a batch of live episodes, each in its own KV-cache slot (library, no Ray).

    actor = LiveActor(dynamics, policy_head, GenerationConfig(), batch=B, tokenizer=tokenizer)
    actions = actor.step(frames, last_actions, starts)   # frames (B, H, W, 3) uint8/float in [0, 1],
                                                         # last_actions (B, A) the action that produced them
                                                         # (-1 at an episode start), starts (B,) bool
    actor.last_agent                                      # (B, S_g, D): h_t of the frames just observed

Per call and slot b: frame t_b of that slot's episode is encoded with the tokenizer (over the slot's last
`latent_receptive_field` frames, so the latent equals the one a whole-episode encoding gives), re-noised to the
context level generation uses (generation.context_signal, d = d_min) and stepped into ring slot t_b % C of that
row; the agent token of that pass is h_t, and the policy's distance-0 output on h_t gives the next action
a_{t+1}: sampled by default (checklist 27), arg-max when `argmax=True`. A start resets the row's cache, frame
counter and frame history, so episodes start and end independently and never see each other.
The uncached reference (tests) is the full forward over the same re-noised frames of one episode.

`rows` (n,) long steps only those slots: frames, last_actions and starts are then (n, ...) and the other slots
keep their caches and frame counters untouched (the world-model service steps the episodes that asked for an
action this batch). `noise` (B or n, N_z, D_z) may be given by the caller (the service draws it per episode, so
an episode's actions do not depend on which other episodes share its batch).
"""

from __future__ import annotations

import torch

from system.imagination.generation import GenerationConfig, context_signal
from system.objectives.shortcut import noise_latents


class LiveActor:
    def __init__(self, model, policy, cfg: GenerationConfig, batch: int, tokenizer=None, argmax: bool = False,
                 task: torch.Tensor | None = None, generator: torch.Generator | None = None):
        self.model, self.policy, self.tokenizer = model, policy, tokenizer
        self.batch, self.argmax, self.task, self.generator = batch, argmax, task, generator
        param = next(model.parameters())
        self.device = param.device
        self.cache = model.transformer.new_cache(batch, self.device, param.dtype)
        self.t = torch.zeros(batch, dtype=torch.long, device=self.device)
        self.ctx_tau = torch.full((batch, 1), context_signal(model.k_max, cfg.context_noise), device=self.device)
        self.ctx_d = torch.full((batch, 1), 1.0 / model.k_max, device=self.device)
        self.history: list[list[torch.Tensor]] = [[] for _ in range(batch)]
        self.window = tokenizer.cfg.latent_receptive_field if tokenizer is not None else 1
        self.last_agent: torch.Tensor | None = None

    def reset(self, rows: torch.Tensor) -> None:
        """rows (B,) bool: a new episode starts in those slots."""
        rows = rows.to(self.device, torch.bool)
        self.cache.reset_rows(rows)
        self.t = torch.where(rows, torch.zeros_like(self.t), self.t)
        for b in torch.nonzero(rows).flatten().tolist():
            self.history[b] = []

    def _rows(self, rows: torch.Tensor | None) -> torch.Tensor:
        if rows is None:
            return torch.arange(self.batch, device=self.device)
        return rows.to(self.device, torch.long)

    def _reset_starts(self, starts: torch.Tensor, rows: torch.Tensor | None) -> None:
        if not starts.any():
            return
        if rows is None:
            self.reset(starts)
        else:
            mask = torch.zeros(self.batch, dtype=torch.bool, device=self.device)
            mask[self._rows(rows)[starts.to(self.device, torch.bool)]] = True
            self.reset(mask)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """frames (n, H, W, 3) in [0, 1] of slots `rows` (all B when None) -> packed latents (n, N_z, D_z), each
        over its own slot's history."""
        slots = self._rows(rows).tolist()
        out = [None] * len(slots)
        by_length: dict[int, list[int]] = {}
        for i, b in enumerate(slots):
            self.history[b] = (self.history[b] + [frames[i]])[-self.window:]
            by_length.setdefault(len(self.history[b]), []).append(i)
        for members in by_length.values():
            clips = torch.stack([torch.stack(self.history[slots[i]]) for i in members])   # (m, T_h, H, W, 3)
            z = self.tokenizer.encode(clips)[:, -1]
            for j, i in enumerate(members):
                out[i] = z[j]
        return self.model.pack(torch.stack(out))

    @torch.no_grad()
    def observe_latents(self, z: torch.Tensor, actions: torch.Tensor, starts: torch.Tensor,
                        noise: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
        """z (n, N_z, D_z) clean packed latents of each slot's new frame; returns h_t (n, S_g, D)."""
        self._reset_starts(starts, rows)
        if noise is None:
            noise = torch.randn(z.shape, generator=self.generator, device=z.device, dtype=z.dtype)
        index = self._rows(rows)
        n = index.shape[0]
        tau, d = self.ctx_tau[:n], self.ctx_d[:n]
        context = noise_latents(z[:, None], noise[:, None].to(z.device, z.dtype), tau)
        cache = self.cache if rows is None else self.cache.rows(index)
        task = self.task if self.task is None or rows is None else self.task[index]
        out = self.model(context, tau, d, actions[:, None].to(self.device), task, cache=cache, t=self.t[index])
        self.t[index] += 1
        self.last_agent = out.agent[:, 0]
        return self.last_agent

    @torch.no_grad()
    def act(self, h: torch.Tensor) -> torch.Tensor:
        dist = self.policy.act(h)
        return dist.mode() if self.argmax else dist.sample(self.generator)

    @torch.no_grad()
    def step(self, frames: torch.Tensor, actions: torch.Tensor, starts: torch.Tensor,
             rows: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.tokenizer is None:
            raise ValueError("LiveActor.step needs a tokenizer; use observe_latents for latents")
        self._reset_starts(starts, rows)
        frames = frames.to(self.device)
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        z = self.encode(frames, rows)
        return self.act(self.observe_latents(z, actions, torch.zeros_like(starts), noise, rows))
