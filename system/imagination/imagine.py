"""Rollouts of a policy inside the world model: the one imagination routine (phase 3's trainer, the imagination
workers and the world-model service's `imagine` all call it).

    traj = imagine(sampler, heads, prior, context_z, context_actions, task, horizon=16,
                   streams=[(B, torch.Generator().manual_seed(0))])
    context_z (B, T0, N_z, D_z) clean packed latents of the real start contexts, context_actions (B, T0, A),
    task (B,) int or None  ->  ImaginedTrajectory: agent (B, H + 1, S_g, D), actions (B, H, A), ... (trajectory.py)

One rollout per start context, in the CachedSampler (K shortcut steps per frame, each finished frame re-noised to
the context level): h_0 is the agent feature of the last context frame; for t < H the policy samples a_{t+1} on
h_t (its mode with argmax=True), the sampler generates frame t+1 with it and returns h_{t+1}. Reward,
continuation and slow-value heads annotate every h_t; log-probabilities under the acting policy and the prior
are stored.

Randomness comes in `streams`: consecutive row ranges, each with its own generator, (rows, generator) in batch
order. A range's noise (context re-noising, start noise, re-noising of generated frames) and its action draws
come from its own generator only, drawn in the order a batch of just those rows would draw them, so a range's
rollouts are the same whichever other ranges share the batch (the world-model service batches several callers'
requests this way). One stream over all rows is the plain single-generator rollout.

`Rollout` is the same call a frame at a time (`advance()` per frame, then `trajectory()`): the world-model
service interleaves the frames of its rollouts with the acts of live episodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from system.imagination.generation import CachedSampler, RolloutNoise, draw_noise
from system.imagination.trajectory import ImaginedTrajectory


def _host(x: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return x.detach().float().cpu().numpy() if dtype == np.float32 else x.detach().cpu().numpy().astype(dtype)


class Rollout:
    """One `imagine` call taken a frame at a time, so a caller can interleave other work between frames (the
    world-model service answers acts between the frames of a rollout): the constructor checks and prefills,
    `advance()` imagines the next frame (True once all `horizon` are done), `trajectory()` annotates them."""

    @torch.no_grad()
    def __init__(self, sampler: CachedSampler, heads, prior, context_z: torch.Tensor,
                 context_actions: torch.Tensor | None, task: torch.Tensor | None, horizon: int,
                 streams: Sequence[tuple[int, torch.Generator]], policy=None, argmax: bool = False,
                 policy_version: int = 0):
        b, t0 = context_z.shape[:2]
        window = sampler.model.cfg.transformer.context
        if t0 > window:
            raise ValueError(f"start context of {t0} frames exceeds the dynamics window {window}")
        if sum(rows for rows, _ in streams) != b or sampler.batch != b:
            raise ValueError(f"streams cover {sum(rows for rows, _ in streams)} rows and the sampler "
                             f"{sampler.batch}; the start contexts are {b}")
        self.sampler, self.heads, self.prior, self.task = sampler, heads, prior, task
        self.policy = heads.policy if policy is None else policy
        self.horizon, self.streams, self.argmax, self.policy_version = horizon, streams, argmax, policy_version
        draws = [draw_noise(rows, t0, horizon, context_z.shape[2:], generator, context_z.device, context_z.dtype)
                 for rows, generator in streams]
        self.noise = RolloutNoise(*(torch.cat(parts, 0) for parts in zip(*draws)))
        self.bounds = np.cumsum([0] + [rows for rows, _ in streams])
        self.h = sampler.prefill(context_z, context_actions, self.noise.context, task)[:, -1]
        self.t = torch.full((b,), t0, dtype=torch.long, device=context_z.device)
        self.features, self.actions, self.logp, self.prior_logp = [self.h], [], [], []

    @property
    def done(self) -> bool:
        return len(self.actions) == self.horizon

    @torch.no_grad()
    def advance(self) -> bool:
        """Imagines the next frame: the policy acts on h_t, the sampler generates frame t + 1."""
        if self.done:
            raise RuntimeError(f"the rollout has imagined all {self.horizon} frames")
        i, h = len(self.actions), self.h
        dist = self.policy.act(h)
        if self.argmax:
            a = dist.mode()
        else:  # each range from its own generator
            a = torch.cat([dist.select(slice(start, end)).sample(generator) for (_, generator), start, end
                           in zip(self.streams, self.bounds[:-1], self.bounds[1:])], 0)
        self.actions.append(a)
        self.logp.append(dist.log_prob(a))
        self.prior_logp.append(self.prior.act(h).log_prob(a))
        _, agent = self.sampler.step(self.t, a[:, None], self.noise.start[:, i:i + 1].contiguous(),
                                     self.noise.renoise[:, i:i + 1].contiguous(), self.task)
        self.h = agent[:, 0]
        self.features.append(self.h)
        self.t = self.t + 1
        return self.done

    @torch.no_grad()
    def trajectory(self) -> ImaginedTrajectory:
        if not self.done:
            raise RuntimeError(f"the rollout has imagined {len(self.actions)} of its {self.horizon} frames")
        heads = self.heads
        feats = torch.stack(self.features, 1)
        continues = (heads.continuation.predict(feats) if heads.continuation is not None
                     else torch.ones(feats.shape[:2]))
        return ImaginedTrajectory(agent=_host(feats), actions=_host(torch.stack(self.actions, 1), np.int32),
                                  log_probs=_host(torch.stack(self.logp, 1)),
                                  prior_log_probs=_host(torch.stack(self.prior_logp, 1)),
                                  rewards=_host(heads.reward.predict(feats)), continues=_host(continues),
                                  values=_host(heads.slow_value.predict(feats)),
                                  policy_version=int(self.policy_version))


def imagine(sampler: CachedSampler, heads, prior, context_z: torch.Tensor, context_actions: torch.Tensor | None,
            task: torch.Tensor | None, horizon: int, streams: Sequence[tuple[int, torch.Generator]],
            policy=None, argmax: bool = False, policy_version: int = 0) -> ImaginedTrajectory:
    """`policy` acts (default heads.policy); `sampler` must hold B rows (CachedSampler(model, ..., batch=B))."""
    rollout = Rollout(sampler, heads, prior, context_z, context_actions, task, horizon, streams, policy, argmax,
                      policy_version)
    while not rollout.done:
        rollout.advance()
    return rollout.trajectory()
