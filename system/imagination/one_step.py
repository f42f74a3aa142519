"""Teacher-forced one-step prediction: what the dynamics model has learned, frame by frame, without rollout drift.

    figures = one_step_figures(dynamics, z, actions, context=8, taus=(0.0, 0.5), generator=g)

z (N, W, N_z, D_z) packed clean latents of real windows (W >= context + 1), actions (N, W, A) int (step
convention: row t holds the action that produced frame t). Each window gives one sample per target frame
t in context..W-1: frames t - context .. t - 1 go in at the cleanest signal level of the grid
(tau = 1 - 1/K_max), frame t at signal level tau (0 = pure noise: the model's own prediction; 0.5: half the
answer given), and the error is the mean squared x-prediction error of frame t in latent units. It is
compared with copying frame t - 1, on all targets and on two parts of them:
- static: frame t equals frame t - 1 (latent MSE below `static_mse`): copying is exact, so anything above
  copy's error is imprecision;
- moving: the rest: the model must predict the change, mostly from the action.
`other_action`: the same moving targets with the action of frame t taken from the same step of another window
(rolled by one window: neighbouring steps of one window often repeat an action), the context unchanged: a model that uses the action gets worse; one that ignores it does not.

Figures (floats): copy_mse, copy_mse_moving, static_share, and per tau (key suffix _tau0, _tau0.5, ...):
mse, mse_static, mse_moving, mse_moving_other_action. The open-loop report (open_loop.py) shows the same
model over many frames; this one says why it falls short of copying, when it does.
"""

from __future__ import annotations

from typing import Sequence

import torch

from system.objectives.shortcut import noise_latents


def target_samples(z: torch.Tensor, actions: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, W, ...) windows -> (N * (W - context), context + 1, ...) samples: every frame t >= context of a
    window with its `context` predecessors."""
    n, w = z.shape[:2]
    if w < context + 1 or context < 1:
        raise ValueError(f"one-step prediction needs 1 <= context < window length, got context {context} of {w}")
    zs = torch.stack([z[:, t - context:t + 1] for t in range(context, w)], 1).flatten(0, 1)
    acts = torch.stack([actions[:, t - context:t + 1] for t in range(context, w)], 1).flatten(0, 1)
    return zs, acts


@torch.no_grad()
def predict_last(dynamics, z: torch.Tensor, actions: torch.Tensor, tau_last: float,
                 noise: torch.Tensor) -> torch.Tensor:
    """x-prediction of the last frame of (B, C + 1, ...) samples: context clean, the last frame at tau_last."""
    b, frames = z.shape[:2]
    d_min = 1.0 / dynamics.k_max
    tau = torch.full((b, frames), 1.0 - d_min, device=z.device)
    tau[:, -1] = tau_last
    d = torch.full((b, frames), d_min, device=z.device)
    return dynamics(noise_latents(z, noise, tau), tau, d, actions).z1[:, -1]


@torch.no_grad()
def one_step_figures(dynamics, z: torch.Tensor, actions: torch.Tensor, context: int,
                     taus: Sequence[float] = (0.0, 0.5), static_mse: float = 2e-3,
                     generator: torch.Generator | None = None, batch: int = 64) -> dict[str, float]:
    samples, acts = target_samples(z, actions, context)
    truth, previous = samples[:, -1], samples[:, -2]
    copy = (previous - truth).square().flatten(1).mean(1)
    static = copy < static_mse
    per_window = z.shape[1] - context
    other = acts.clone()
    other[:, -1] = acts[:, -1].roll(per_window if z.shape[0] > 1 else 1, 0)
    noise = torch.randn(samples.shape, generator=generator, device=samples.device, dtype=samples.dtype)
    out = {"copy_mse": float(copy.mean()), "copy_mse_moving": _mean(copy, ~static),
           "static_share": float(static.float().mean()), "samples": float(len(samples))}
    for tau in taus:
        errors = {}
        for name, a in (("true", acts), ("other", other)):
            parts = [predict_last(dynamics, samples[i:i + batch], a[i:i + batch], tau, noise[i:i + batch])
                     for i in range(0, len(samples), batch)]
            errors[name] = (torch.cat(parts) - truth).square().flatten(1).mean(1)
        key = f"_tau{tau:g}"
        out["mse" + key] = float(errors["true"].mean())
        out["mse_static" + key] = _mean(errors["true"], static)
        out["mse_moving" + key] = _mean(errors["true"], ~static)
        out["mse_moving_other_action" + key] = _mean(errors["other"], ~static)
    return out


def _mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")
