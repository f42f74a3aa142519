"""Shortcut forcing: the dynamics objective of Dreamer 4 (paper section 3.2, Eq. 3-8; checklist items 1-6).

    tau, d = sample_signal(B, T, k_max, bootstrap_rows, generator)      # (B, T) each, tau on d's grid
    draws = FrameDraws.draw(seeds, T, (N_z, D_z))                        # the same numbers, one seed per row
    z_noisy = noise_latents(z1, z0, tau)                                 # (1 - tau) z0 + tau z1
    loss, metrics = shortcut_loss(model, z1, actions, cfg, step)        # z1 (B, T, N_z, D_z) packed clean

Conventions (the paper's): z~ = (1 - tau) z0 + tau z1 with z0 ~ N(0, I), tau = 0 pure noise, tau = 1 clean.
The model predicts clean latents (x-prediction); its implied velocity at (z~, tau) is (z1_hat - z~) / (1 - tau).

Sampling (diffusion forcing: every frame gets its own (tau, d)):
- Step sizes d in {1, 1/2, ..., 1/K_max}, d_min = 1/K_max; tau uniform on {0, d, 2d, ..., 1 - d}.
- Which rows bootstrap [impl convention, as in public reimplementations]: the first round(bootstrap_fraction
  * B) rows of a batch (rows are random samples already) are bootstrap rows once `step >= bootstrap_warmup`;
  all other rows use d = d_min. Choice "per sequence vs per frame d": the KIND of row (flow or bootstrap) is
  per sequence, while d itself is drawn per frame inside a bootstrap row, uniform over all log2 K_max + 1
  sizes d_min included, and tau per frame on that frame's grid. Per-sequence row kinds let the two extra
  no-grad passes of the bootstrap target run on the bootstrap rows only (0.5x extra compute at 25%, instead
  of 2x). Frames at d_min inside a bootstrap row are what generation feeds next to the frame it steps (context
  at d_min, the current frame at d = 1/K): they take the flow loss and stay put in the half-step passes.
- `clean_context_fraction` f > 0 (small configs only; the paper's is 0): a share f of the d_min frames is put
  at tau = 1 - d_min, so that clean predecessors, as generation feeds them, are common in training.
Loss per frame, weighted by the ramp w(tau) = 0.9 tau + 0.1 (Eq. 8) and averaged over all frames:
- d = d_min (flow): ||z1_hat - z1||^2 (mean over latent elements).
- d > d_min (bootstrap, Eq. 7): (1 - tau)^2 ||(z1_hat - z~)/(1 - tau) - sg(b' + b'')/2||^2 with the two
  half-step velocities of the model itself (no grad):
      b'  = (f(z~, tau, d/2) - z~) / (1 - tau),           z' = z~ + b' d/2
      b'' = (f(z', tau + d/2, d/2) - z') / (1 - tau - d/2)
  In the half-step passes every frame of a bootstrap row with d > d_min takes its own half step at once,
  while its frames at d_min are held at (z~, tau, d_min), so frame t's second pass sees those context frames
  as generation shows them: the simplest consistent reading of Eq. 7 under diffusion forcing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class ShortcutConfig:
    bootstrap_fraction: float = 0.25   # share of rows with d > d_min [impl: public reimplementations]
    bootstrap_warmup: int = 5000       # steps before the first bootstrap row (all flow rows until then) [impl]
    ramp_weight: bool = True           # w(tau) = 0.9 tau + 0.1 (paper Eq. 8); False: w = 1 (ablation only)
    # Bootstrap rows draw d per frame with d_min among the choices, so a row holds stepping frames beside d_min
    # frames as generation does. False: every frame of a bootstrap row steps (d > d_min; ablation only).
    mixed_bootstrap_rows: bool = True
    # Share of the flow frames (d = d_min) given the cleanest input of the grid, tau = 1 - d_min, instead of a
    # uniform tau. They stand for the clean context frames generation feeds, so a small model sees clean
    # predecessors often enough to learn to copy what stays and move what moves [ours, for CPU budgets;
    # 0 = the paper's uniform per-frame tau; docs/architecture.md "What the small configs change"].
    clean_context_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.bootstrap_fraction <= 1.0:
            raise ValueError(f"bootstrap_fraction must be in [0, 1], got {self.bootstrap_fraction}")
        if not 0.0 <= self.clean_context_fraction < 1.0:
            raise ValueError(f"clean_context_fraction must be in [0, 1), got {self.clean_context_fraction}")


def ramp_weight(tau: torch.Tensor) -> torch.Tensor:
    """w(tau) = 0.9 tau + 0.1 (paper Eq. 8): little weight where the input holds little signal."""
    return 0.9 * tau + 0.1


def noise_latents(z1: torch.Tensor, z0: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """z~ = (1 - tau) z0 + tau z1; z (B, T, N, D), tau (B, T). Keeps the dtype of z1 (tau may be float32)."""
    tau = tau[..., None, None]
    return ((1 - tau) * z0 + tau * z1).to(z1.dtype)


def num_bootstrap_rows(batch: int, cfg: ShortcutConfig, step: int) -> int:
    """Rows 0..n-1 of a batch are bootstrap rows (a Python int: fixed per step, so shapes stay static)."""
    if step < cfg.bootstrap_warmup:
        return 0
    return int(round(cfg.bootstrap_fraction * batch))


def sample_signal(batch: int, frames: int, k_max: int, bootstrap_rows: int = 0,
                  generator: torch.Generator | None = None, device=None,
                  mixed: bool = True, clean_fraction: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame (tau, d), each (B, T) float32, exactly on the grid (signal_on_grid of fresh uniforms).

    Rows >= bootstrap_rows: d = 1/K_max. Rows < bootstrap_rows: d = 2^-e per frame, e uniform in
    {0, ..., log2 K_max} (d_min included, so a row mixes stepping frames with d_min frames, as generation
    does; mixed=False leaves d_min out). Every tau is i * d with i uniform in {0, ..., 1/d - 1}; with
    clean_fraction > 0 that share of the d_min frames takes tau = 1 - d_min instead."""
    level = torch.rand(batch, frames, generator=generator, device=device)
    position = torch.rand(batch, frames, generator=generator, device=device)
    clean = torch.rand(batch, frames, generator=generator, device=device) if clean_fraction else None
    return signal_on_grid(level, position, k_max, bootstrap_rows, mixed, clean, clean_fraction)


def signal_on_grid(level: torch.Tensor, position: torch.Tensor, k_max: int, bootstrap_rows: int = 0,
                   mixed: bool = True, clean: torch.Tensor | None = None,
                   clean_fraction: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(tau, d) from (B, T) uniforms in [0, 1): `level` picks the step size of a bootstrap row's frame,
    `position` the point on that step size's grid, and a d_min frame whose `clean` draw is below
    `clean_fraction` gets tau = 1 - d_min. Powers of two and their multiples below 1 are exact in float32, so
    tau / d is an exact integer."""
    levels = int(math.log2(k_max))
    if 2 ** levels != k_max:
        raise ValueError(f"k_max must be a power of two, got {k_max}")
    exponent = torch.full(level.shape, levels, dtype=torch.long, device=level.device)
    if bootstrap_rows and levels > 0:
        choices = levels + int(mixed)
        exponent[:bootstrap_rows] = (level[:bootstrap_rows] * choices).long().clamp(max=choices - 1)
    steps = torch.pow(2, exponent)                                    # 1/d, int
    index = torch.minimum((position * steps).long(), steps - 1)      # uniform in {0, ..., 1/d - 1}
    d = 1.0 / steps.float()
    if clean is not None and clean_fraction > 0:
        index = torch.where((clean < clean_fraction) & (steps == k_max), steps - 1, index)
    return index.float() * d, d


@dataclass
class FrameDraws:
    """The random numbers of shortcut forcing for a batch, drawn row by row, each row from its own seed.

        draws = FrameDraws.draw(seeds, frames=T, latent_shape=(N_z, D_z), device=..., dtype=...)   # B seeds
        loss, metrics = shortcut_loss(model, z1, actions, cfg, step, draws=draws, bootstrap_rows=n)

    A row's numbers then do not depend on the other rows of its batch, so a row trained on any data-parallel
    rank (system/training/data_parallel.py: Shard.row_seeds) draws what it draws in one process."""
    noise: torch.Tensor      # (B, T, N, D) z0 ~ N(0, I)
    level: torch.Tensor      # (B, T) U[0, 1): the step size of a bootstrap frame
    position: torch.Tensor   # (B, T) U[0, 1): tau on that step size's grid
    clean: torch.Tensor      # (B, T) U[0, 1): below clean_context_fraction, a d_min frame is clean

    @classmethod
    def draw(cls, seeds: list[int], frames: int, latent_shape: tuple[int, ...], device=None,
             dtype: torch.dtype = torch.float32) -> FrameDraws:
        noise, level, position, clean = [], [], [], []
        for seed in seeds:
            g = torch.Generator(device=device).manual_seed(seed)
            noise.append(torch.randn((frames, *latent_shape), generator=g, device=device, dtype=dtype))
            level.append(torch.rand(frames, generator=g, device=device))
            position.append(torch.rand(frames, generator=g, device=device))
            clean.append(torch.rand(frames, generator=g, device=device))  # drawn last: the others stay as they were
        if not seeds:
            empty = torch.zeros(0, frames, device=device)
            return cls(torch.zeros((0, frames, *latent_shape), device=device, dtype=dtype), empty, empty, empty)
        return cls(torch.stack(noise), torch.stack(level), torch.stack(position), torch.stack(clean))

    def split_images(self, images: int) -> tuple[FrameDraws, FrameDraws]:
        """(sequence rows images.., the first `images` rows as one-frame rows), as batch_schedule.split_images
        splits the latents."""
        def alone(x: torch.Tensor) -> torch.Tensor:
            return x[:images].reshape(images * x.shape[1], 1, *x.shape[2:])
        return (FrameDraws(self.noise[images:], self.level[images:], self.position[images:], self.clean[images:]),
                FrameDraws(alone(self.noise), alone(self.level), alone(self.position), alone(self.clean)))


@torch.no_grad()
def bootstrap_target(model, z_noisy: torch.Tensor, tau: torch.Tensor, d: torch.Tensor,
                     actions: torch.Tensor | None = None, task: torch.Tensor | None = None) -> torch.Tensor:
    """sg(b' + b'')/2: the mean of the model's two half-step VELOCITIES (Eq. 7), shape of z_noisy.

    Not the mean of two x-predictions: each prediction is first turned into the velocity from its own input
    point, (z1_hat - z) / (1 - tau). Frames at d = d_min (the finest step, which has no half) are held at
    (z~, tau, d_min) in both passes, like context frames in generation; their entries are not a target."""
    held = d <= 1.0 / model.k_max
    half = torch.where(held, d, d / 2)
    b1 = (model(z_noisy, tau, half, actions, task).z1 - z_noisy) / (1 - tau)[..., None, None]
    z_mid = torch.where(held[..., None, None], z_noisy, z_noisy + b1 * half[..., None, None])
    tau_mid = torch.where(held, tau, tau + half)
    b2 = (model(z_mid, tau_mid, half, actions, task).z1 - z_mid) / (1 - tau_mid)[..., None, None]
    return (b1 + b2) / 2


def shortcut_loss(model, z1: torch.Tensor, actions: torch.Tensor | None, cfg: ShortcutConfig, step: int,
                  generator: torch.Generator | None = None, task: torch.Tensor | None = None,
                  noise: torch.Tensor | None = None, signal: tuple[torch.Tensor, torch.Tensor] | None = None,
                  draws: FrameDraws | None = None, bootstrap_rows: int | None = None):
    """Shortcut forcing loss of one rectangular batch of sequences.

    model: callable (z, tau, d, actions, task) -> object with .z1 (B, T, N_z, D_z), and attribute k_max.
    z1: (B, T, N_z, D_z) clean packed latents; actions (B, T, A) or None.
    noise / signal: optional fixed z0 and (tau, d) (tests); by default drawn from `generator`, or taken from
    `draws` (row by row). bootstrap_rows: how many of the first rows bootstrap; by default
    num_bootstrap_rows(B) (a data-parallel rank holding part of a global batch passes its share of them).
    Returns (loss scalar, metrics dict of detached scalars).
    """
    b, frames = z1.shape[:2]
    n_boot = num_bootstrap_rows(b, cfg, step) if bootstrap_rows is None else bootstrap_rows
    if signal is not None:
        tau, d = signal
    elif draws is not None:
        tau, d = signal_on_grid(draws.level, draws.position, model.k_max, n_boot, cfg.mixed_bootstrap_rows,
                                draws.clean, cfg.clean_context_fraction)
    else:
        tau, d = sample_signal(b, frames, model.k_max, n_boot, generator, z1.device, cfg.mixed_bootstrap_rows,
                               cfg.clean_context_fraction)
    if noise is None:
        noise = draws.noise if draws is not None else torch.randn(z1.shape, generator=generator, device=z1.device,
                                                                  dtype=z1.dtype)
    z0 = noise
    z_noisy = noise_latents(z1, z0, tau)
    pred = model(z_noisy, tau, d, actions, task).z1
    weight = ramp_weight(tau) if cfg.ramp_weight else torch.ones_like(tau)

    per_frame = (pred - z1).square().mean(dim=(-2, -1))                    # flow term, (B, T)
    is_boot = torch.zeros(b, frames, dtype=torch.bool, device=z1.device)
    boot_err = per_frame.new_zeros(())
    if n_boot:
        rows = slice(0, n_boot)
        sub_actions = actions[rows] if actions is not None else None
        sub_task = task[rows] if task is not None else None
        target = bootstrap_target(model, z_noisy[rows], tau[rows], d[rows], sub_actions, sub_task)
        one_minus = (1 - tau[rows])[..., None, None]
        velocity = (pred[rows] - z_noisy[rows]) / one_minus
        boot = ((1 - tau[rows]) ** 2) * (velocity - target).square().mean(dim=(-2, -1))  # (n_boot, T)
        stepping = d[rows] > 1.0 / model.k_max                             # d_min frames keep the flow term
        per_frame = torch.cat([torch.where(stepping, boot, per_frame[rows]), per_frame[n_boot:]], dim=0)
        is_boot[rows] = stepping
        boot_err = (boot.detach() * stepping).sum() / stepping.sum().clamp_min(1)
    loss = (weight * per_frame).mean()

    with torch.no_grad():
        flow_frames = ~is_boot
        flow_mse = (per_frame * flow_frames).sum() / flow_frames.sum().clamp_min(1)
        x_mse = (pred - z1).square().mean()
    metrics = {"loss": loss.detach(), "flow_mse": flow_mse, "bootstrap_mse": boot_err,
               "bootstrap_rows": torch.tensor(float(n_boot) / b), "x_mse": x_mse}
    return loss, metrics
