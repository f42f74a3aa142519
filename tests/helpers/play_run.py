"""Models for the play tests: a tiny run directory (the smoke config with random-init checkpoints in the format
the main job writes: config.yaml, checkpoints/tokenizer.pt and dynamics.pt; nothing trained), and tiny
in-memory models on 64x64 Crafter frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from system.data.ingested_tables import run_action_space
from system.imagination.generation import CachedSampler, GenerationConfig
from system.model.dynamics import Dynamics
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.model.transformer import TransformerConfig
from system.run.config import load
from system.run.run_dir import create_run_dir
from system.run.typed_config import to_dict
from system.training.checkpoint import save_checkpoint
from tests.helpers.acting import DYNAMICS, SPACE

SMOKE = ["--config", "configs/smoke.yaml", "replay.backend=embedded", "logging.wandb=disabled"]


def tiny_run(run_dir: str | Path, seed: int = 0, overrides: tuple[str, ...] = ()) -> Path:
    """Writes the run directory and returns it; the models are the smoke config's, weights from `seed`."""
    cfg = load([*SMOKE, f"run_dir={run_dir}", *overrides])
    path = create_run_dir(cfg)
    torch.manual_seed(seed)
    tokenizer = Tokenizer(cfg.tokenizer.model)
    dynamics = Dynamics(cfg.dynamics.model, run_action_space(cfg))
    save_checkpoint(path / "checkpoints" / "tokenizer.pt",
                    {"model": tokenizer.state_dict(), "config": to_dict(cfg.tokenizer.model), "step": 0})
    save_checkpoint(path / "checkpoints" / "dynamics.pt",
                    {"model": dynamics.state_dict(), "config": to_dict(cfg.dynamics.model), "step": 0})
    return path


# One space and one temporal layer: the acting helpers' tokenizer has temporal layers only, so its readouts never
# see the latents and every decoded frame is the same picture (fine for acting, useless for watching frames).
NET = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=2, attention="dense")
TOKENIZER = TokenizerConfig(image_size=(64, 64), patch_size=16, num_latents=8, latent_dim=4, encoder=NET, decoder=NET)


def tiny_play_models(seed: int = 0) -> tuple[Tokenizer, Dynamics]:
    """(tokenizer, dynamics) in eval mode for the Crafter action space, weights from torch.manual_seed(seed).
    The dynamics' transformer and action table are redrawn with unit-variance weights (std 1/sqrt(fan-in)):
    under the GPT-2 init the residual branches are near zero, a frame's latents barely read the action token,
    and two actions give frames one grey level apart; here they differ as in a trained model."""
    torch.manual_seed(seed)
    tokenizer, dynamics = Tokenizer(TOKENIZER).eval(), Dynamics(DYNAMICS, SPACE).eval()
    with torch.no_grad():
        for weight in dynamics.transformer.parameters():
            if weight.dim() == 2:
                torch.nn.init.normal_(weight, 0.0, weight.shape[1] ** -0.5)
        dynamics.actions.table.normal_(0.0, 1.0)
    return tokenizer, dynamics


@torch.no_grad()
def sampler_frames(tokenizer, dynamics, context_frames: np.ndarray, context_actions: np.ndarray, seed: int,
                   actions, ks, context_noise: float = 0.1) -> np.ndarray:
    """The frames of one played episode computed with CachedSampler by hand, as a reference for what a play
    session and the server send: the real context (T0, H, W, 3) uint8 encoded and prefilled, one step per action
    (A,) at its K, noise from torch.Generator().manual_seed(seed) in the session's documented order (context,
    then start and renoise per frame), the latents decoded all at once after the context. Out (H_new, H, W, 3)
    uint8."""
    t0 = len(context_frames)
    g = torch.Generator().manual_seed(seed)
    shape = (dynamics.cfg.packed_tokens, dynamics.cfg.packed_dim)
    z_ctx = dynamics.pack(tokenizer.encode(torch.from_numpy(context_frames).float()[None] / 255.0))
    cache = dynamics.transformer.new_cache(1)
    samplers = {k: CachedSampler(dynamics, GenerationConfig(k, context_noise), 1, cache=cache) for k in set(ks)}
    samplers[ks[0]].prefill(z_ctx, torch.from_numpy(np.asarray(context_actions)).long()[None],
                            torch.randn(1, t0, *shape, generator=g))
    zs = []
    for h, (action, k) in enumerate(zip(actions, ks)):
        start, renoise = torch.randn(1, 1, *shape, generator=g), torch.randn(1, 1, *shape, generator=g)
        action = torch.as_tensor(np.asarray(action)).long().view(1, 1, -1)
        z, _ = samplers[k].step(torch.tensor([t0 + h]), action, start, renoise)
        zs.append(z)
    decoded = tokenizer.decode(dynamics.unpack(torch.cat([z_ctx, *zs], 1)))[0, t0:]
    return decoded.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
