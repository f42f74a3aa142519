"""Tiny dynamics models and a stand-in action space shared by the dynamics tests."""

from dataclasses import dataclass

import pytest
import torch

from system.model.dynamics import Dynamics, DynamicsConfig
from system.model.transformer import TransformerConfig


@dataclass(frozen=True)
class Component:  # duck-types system/envs/action_space.ActionComponent
    name: str
    kind: str
    num_classes: int = 1


@dataclass(frozen=True)
class Space:  # duck-types system/envs/action_space.ActionSpace
    name: str
    components: tuple


# Minecraft-like in miniature: two binary keys and a categorical camera.
TOY_SPACE = Space("toy", (Component("forward", "binary", 2), Component("jump", "binary", 2),
                          Component("camera", "categorical", 9)))


def tiny_config(context: int = 8, k_max: int = 16, dim: int = 32, depth: int = 4, agent_tokens: int = 1,
                attention: str = "dense", **kwargs) -> DynamicsConfig:
    return DynamicsConfig(
        transformer=TransformerConfig(dim=dim, depth=depth, num_heads=4, num_kv_heads=2, temporal_every=2,
                                      context=context, attention=attention),
        latent_tokens=8, latent_dim=4, packed_tokens=4, registers=2, action_tokens=1, agent_tokens=agent_tokens,
        num_tasks=3, k_max=k_max, **kwargs)


def tiny_model(space=TOY_SPACE, seed: int = 0, **kwargs) -> Dynamics:
    torch.manual_seed(seed)
    return Dynamics(tiny_config(**kwargs), space)


def random_actions(batch: int, frames: int, space=TOY_SPACE, generator=None, unlabeled: float = 0.0):
    cols = [torch.randint(c.num_classes, (batch, frames, 1), generator=generator) for c in space.components]
    actions = torch.cat(cols, -1)
    if unlabeled:
        drop = torch.rand(batch, frames, 1, generator=generator) < unlabeled
        actions = torch.where(drop, torch.full_like(actions, -1), actions)
    return actions


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one intra-op thread (thread hand-off dominates), and a busy neighbour
    process on a 2-core box then cannot stall every small matmul. Test modules import this fixture."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
