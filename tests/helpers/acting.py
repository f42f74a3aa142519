"""Tiny acting models on 64x64 Crafter frames with the real Crafter action space (one 17-way categorical), for
the acting service, its Ray actor and the evaluator. Small enough that a frame step takes milliseconds on CPU."""

from __future__ import annotations

import torch

from system.envs.action_space import crafter_action_space
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
