"""Open-loop prediction with the world model: real context frames in, imagined future frames out.

    result = open_loop(tokenizer, dynamics, frames, actions, context=8, sampling_steps=4, noise=noise)
    result.imagined   (N, H, h, w, 3) decoded imagined frames in [0, 1]
    result.z          (N, H, N_z, D_z) generated packed latents; result.true_z the real ones
    pixel_mse_per_step(result.imagined, frames[:, context:])  -> (H,)
    psnr_db(mse)                                              -> PSNR in dB of an MSE
    figures, result = open_loop_figures(tokenizer, dynamics, frames, actions, context, ks=(4, 64))

frames (N, C + H, h, w, 3) float in [0, 1], actions (N, C + H, A) int (step convention: row t holds the action
that produced frame t). The first C frames are encoded and used as context; the next H frames are generated one
after another from the model's own previous frames, driven by the given actions (the real ones, or others for
an action-sensitivity check). The tokenizer decoder is causal in time, so imagined latents are decoded after the
real context latents, as they would be in a live rollout.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from system.imagination.generation import GenerationConfig, RolloutNoise, draw_noise, rollout
from system.objectives.image_metrics import retrieval_accuracy


class OpenLoopResult(NamedTuple):
    imagined: torch.Tensor   # (N, H, h, w, 3)
    z: torch.Tensor          # (N, H, N_z, D_z)
    true_z: torch.Tensor     # (N, C + H, N_z, D_z) packed latents of the real frames


@torch.no_grad()
def encode_packed(tokenizer, dynamics, frames: torch.Tensor) -> torch.Tensor:
    """(N, T, h, w, 3) in [0, 1] -> packed latents (N, T, N_z, D_z)."""
    return dynamics.pack(tokenizer.encode(frames))


@torch.no_grad()
def decode_after(tokenizer, dynamics, context_z: torch.Tensor, future_z: torch.Tensor) -> torch.Tensor:
    """Decodes future packed latents after their context (the decoder is causal): (N, H, h, w, 3)."""
    c = context_z.shape[1]
    return tokenizer.decode(dynamics.unpack(torch.cat([context_z, future_z], 1)))[:, c:].clamp(0, 1)


@torch.no_grad()
def open_loop(tokenizer, dynamics, frames: torch.Tensor, actions: torch.Tensor, context: int,
              sampling_steps: int = 4, context_noise: float = 0.1, noise: RolloutNoise | None = None,
              generator: torch.Generator | None = None, true_z: torch.Tensor | None = None) -> OpenLoopResult:
    n, total = frames.shape[:2]
    horizon = total - context
    if horizon < 1 or context < 0:
        raise ValueError(f"open_loop needs 0 <= context < frames, got context {context} of {total} frames")
    z = encode_packed(tokenizer, dynamics, frames) if true_z is None else true_z
    if noise is None:
        noise = draw_noise(n, context, horizon, tuple(z.shape[2:]), generator, z.device)
    cfg = GenerationConfig(sampling_steps=sampling_steps, context_noise=context_noise)
    out = rollout(dynamics, cfg, z[:, :context], actions[:, :context], actions[:, context:], noise=noise)
    return OpenLoopResult(decode_after(tokenizer, dynamics, z[:, :context], out.z), out.z, z)


def pixel_mse_per_step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, H, h, w, 3) in [0, 1] -> (H,) pixel MSE per horizon step, averaged over sequences."""
    return (x.clamp(0, 1) - y).square().flatten(2).mean(-1).mean(0)


def psnr_db(mse: torch.Tensor) -> torch.Tensor:
    """PSNR of an (averaged) MSE; averaging MSE before the log keeps unchanged frames from dominating."""
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


@torch.no_grad()
def open_loop_figures(tokenizer, dynamics, frames: torch.Tensor, actions: torch.Tensor, context: int,
                      ks: tuple[int, ...] = (4, 64), context_noise: float = 0.1,
                      generator: torch.Generator | None = None) -> tuple[dict[str, float], OpenLoopResult]:
    """The world model's open-loop report on (N, C + H) real clips, N >= 2, and the first K's result.

    Every figure uses the same noise; pixel PSNRs come from the MSE pooled over clips and horizon (psnr_db).
    With a horizon over 8 frames each figure is also given over the first 8 (suffix _first8).
    - open_loop_psnr_k{K}, open_loop_latent_mse_k{K}: the real actions, K sampling steps per frame;
    - shuffled_actions_psnr (first K): each clip driven by the next clip's actions (the same action statistics,
      the wrong ones): what the player's moves add;
    - copy_last_psnr / copy_last_latent_mse: the last context frame held for the whole horizon;
    - tokenizer_ceiling_psnr: the real future latents decoded, the best any dynamics model can score here;
    - own_over_other_latent_mse (first K): the latent MSE of each clip's imagined future against its own real
      future, over that against the other clips' real futures. A prediction blind to the context scores about
      1; _copy: the same for the held context frame;
    - retrieval_last (first K): share of clips whose last imagined frame is nearest to its own real last frame
      among all clips' (chance 1 / N); retrieval_last_copy: the same for the held context frame.
    """
    n, total = frames.shape[:2]
    if n < 2:
        raise ValueError("open_loop_figures needs at least two clips (retrieval and shuffled actions)")
    horizon = total - context
    prefixes = [h for h in (8,) if h < horizon]      # also report the first 8 frames of a longer horizon

    def pixels(name, imagined):
        per_step = pixel_mse_per_step(imagined, truth)
        figures[name] = float(psnr_db(per_step.mean()))
        for h in prefixes:
            figures[f"{name}_first{h}"] = float(psnr_db(per_step[:h].mean()))

    def latents(name, z):
        per_step = (z - future_z).square().flatten(2).mean(-1).mean(0)
        figures[name] = float(per_step.mean())
        for h in prefixes:
            figures[f"{name}_first{h}"] = float(per_step[:h].mean())

    true_z = encode_packed(tokenizer, dynamics, frames)
    noise = draw_noise(n, context, horizon, tuple(true_z.shape[2:]), generator, true_z.device)
    truth, future_z = frames[:, context:], true_z[:, context:]
    figures: dict[str, float] = {}
    first = None
    for k in ks:
        result = open_loop(tokenizer, dynamics, frames, actions, context, k, context_noise, noise, true_z=true_z)
        first = first or result
        pixels(f"open_loop_psnr_k{k}", result.imagined)
        latents(f"open_loop_latent_mse_k{k}", result.z)
    shuffled = torch.cat([actions[:, :context], actions.roll(1, 0)[:, context:]], 1)
    other = open_loop(tokenizer, dynamics, frames, shuffled, context, ks[0], context_noise, noise, true_z=true_z)
    pixels("shuffled_actions_psnr", other.imagined)
    latents("shuffled_actions_latent_mse", other.z)
    pixels("tokenizer_ceiling_psnr", decode_after(tokenizer, dynamics, true_z[:, :context], future_z))
    held = frames[:, context - 1:context].expand_as(truth)
    pixels("copy_last_psnr", held)
    latents("copy_last_latent_mse", true_z[:, context - 1:context].expand_as(future_z))
    figures["own_over_other_latent_mse"] = own_over_other(first.z, future_z)
    figures["own_over_other_latent_mse_copy"] = own_over_other(true_z[:, context - 1:context].expand_as(future_z),
                                                               future_z)
    figures["retrieval_last"] = float(retrieval_accuracy(first.imagined[:, -1], truth[:, -1]))
    figures["retrieval_last_copy"] = float(retrieval_accuracy(held[:, -1], truth[:, -1]))
    figures["retrieval_chance"] = 1.0 / n
    return figures, first


def own_over_other(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """(N, H, ...) predictions and truths: mean MSE to the own clip's truth over mean MSE to the other clips'."""
    n = predicted.shape[0]
    errors = torch.cdist(predicted.flatten(1).float(), truth.flatten(1).float()).square() / truth[0].numel()
    own = errors.diagonal().mean()
    other = (errors.sum() - errors.diagonal().sum()) / (n * (n - 1))
    return float(own / other)
