"""Tiny acting models on 64x64 Crafter frames with the real Crafter action space (one 17-way categorical), for
the acting service, its Ray actor and the evaluator. Small enough that a frame step takes milliseconds on CPU."""

from __future__ import annotations

import numpy as np
import torch

from system.envs.action_space import crafter_action_space
from system.imagination.acting import LiveActor
from system.imagination.generation import GenerationConfig
from system.model.agent_heads import AgentHeads, AgentHeadsConfig
from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.model.transformer import TransformerConfig

SPACE = crafter_action_space()
NET = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=1, context=2,
                        attention="dense")
TOKENIZER = TokenizerConfig(image_size=(64, 64), patch_size=16, num_latents=8, latent_dim=4, encoder=NET,
                            decoder=NET)
DYNAMICS = DynamicsConfig(
    transformer=TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=4,
                                  attention="dense"),
    latent_tokens=8, latent_dim=4, packed_tokens=4, registers=1, action_tokens=1, agent_tokens=1, num_tasks=1,
    k_max=16)
HEADS = AgentHeadsConfig(hidden=16, layers=1, mtp=0, bins=15, continuation=False)
# context_noise 0 would still mix in 1/K_max noise; the per-episode noise makes runs comparable anyway
GENERATION = GenerationConfig(sampling_steps=1, context_noise=0.1)


def tiny_models(seed: int = 0):
    """(tokenizer, dynamics, heads), eval mode, weights from torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    tokenizer = Tokenizer(TOKENIZER).eval()
    dynamics = Dynamics(DYNAMICS, SPACE).eval()
    heads = AgentHeads(HEADS, SPACE.components, DYNAMICS.agent_tokens, DYNAMICS.transformer.dim).eval()
    return tokenizer, dynamics, heads


def weights(seed: int) -> dict:
    """The state dicts the service loads, from tiny_models(seed)."""
    tokenizer, dynamics, heads = tiny_models(seed)
    return {"tokenizer": tokenizer.state_dict(), "dynamics": dynamics.state_dict(),
            "policy": heads.policy.state_dict()}


@torch.no_grad()
def lone_actions(models, frames: np.ndarray, noise_seed: int) -> np.ndarray:
    """Actions (T, A) of one episode of frames (T, H, W, 3) uint8 on its own: a batch-1 arg-max LiveActor over
    (tokenizer, dynamics, heads) with the episode's noise generator; each frame's last action is the one taken
    before it (-1 at the start)."""
    tokenizer, dynamics, heads = models
    actor = LiveActor(dynamics, heads.policy, GENERATION, batch=1, tokenizer=tokenizer, argmax=True,
                      generator=torch.Generator().manual_seed(noise_seed))
    last, out = torch.full((1, 1), -1), []
    for t in range(len(frames)):
        last = actor.step(torch.from_numpy(frames[t:t + 1]), last, torch.tensor([t == 0]))
        out.append(last[0].numpy())
    return np.stack(out)
