"""Action embedding: components embedded separately and summed with a learned base; unlabeled frames get
exactly the base (the "no action" embedding); the real Minecraft and Crafter spaces."""

import pytest
import torch

from system.model.action_embedding import ActionEmbedding
from tests.helpers.dynamics import TOY_SPACE, Component, Space, random_actions


def test_unlabeled_frames_get_exactly_the_base_embedding():
    torch.manual_seed(0)
    emb = ActionEmbedding(TOY_SPACE.components, dim=16, tokens=2)
    actions = random_actions(2, 5, generator=torch.Generator().manual_seed(1))
    actions[0, 2] = -1
    out = emb(actions)
    assert out.shape == (2, 5, 2, 16)
    assert torch.equal(out[0, 2], emb.base)
    assert torch.equal(emb(None, (2, 5)), emb.base.expand(2, 5, 2, 16))
    # float actions: NaN means no label too
    assert torch.equal(emb(torch.full((1, 1, 3), float("nan")))[0, 0], emb.base)
    # a labeled frame differs from the base
    assert (out[0, 0] - emb.base).abs().max() > 1e-3


def test_components_are_embedded_separately_and_summed():
    torch.manual_seed(0)
    emb = ActionEmbedding(TOY_SPACE.components, dim=8)
    a = torch.tensor([[[1, 0, 7]]])
    only = lambda col: torch.where(torch.arange(3) == col, a, torch.full_like(a, -1))  # noqa: E731
    parts = [emb(only(c)) - emb.base for c in range(3)]
    assert torch.allclose(emb(a), emb.base + sum(parts), atol=1e-6)
    # the two binary keys have their own tables: key 0 pressed != key 1 pressed
    assert (emb(torch.tensor([[[1, -1, -1]]])) - emb(torch.tensor([[[-1, 1, -1]]]))).abs().max() > 1e-3
    # -1 looks up no row at all: the gradient of an unlabeled frame reaches only the base
    emb.zero_grad()
    emb(torch.tensor([[[-1, -1, -1]]])).sum().backward()
    assert emb.table.grad.abs().max() == 0 and emb.base.grad.abs().min() > 0


def test_continuous_components_use_a_linear_layer():
    torch.manual_seed(0)
    space = Space("arm", (Component("dx", "continuous"), Component("grip", "binary", 2)))
    emb = ActionEmbedding(space.components, dim=8)
    with torch.no_grad():
        emb.cont_bias.normal_()

    def at(x):
        return emb(torch.tensor([[[x, float("nan")]]]))
    assert torch.allclose(at(3.0) - at(1.0), 2 * (at(1.0) - at(0.0)), atol=1e-6)  # affine in the value
    assert torch.equal(at(float("nan")), emb.base.expand(1, 1, 1, 8))
    with pytest.raises(ValueError, match="unknown kind"):
        ActionEmbedding((Component("x", "gaussian"),), dim=8)



def test_real_action_spaces_embed_every_component():
    """Minecraft: 23 binary keys (2 rows each) + a 121-way camera; Crafter: one 17-way categorical."""
    from system.envs.action_space import crafter_action_space, minecraft_action_space
    torch.manual_seed(0)
    minecraft = ActionEmbedding(minecraft_action_space().components, dim=8)
    assert minecraft.table.shape == (23 * 2 + 121, 8)
    assert ActionEmbedding(crafter_action_space().components, dim=8).table.shape == (17, 8)
    noop = torch.from_numpy(minecraft_action_space().noop()).long().view(1, 1, -1)
    camera_left = noop.clone()
    camera_left[..., -1] = 55  # another camera bin changes the token, keys unchanged
    assert (minecraft(noop) - minecraft(camera_left)).abs().max() > 1e-4
    assert torch.equal(minecraft(torch.full_like(noop, -1)), minecraft.base.expand(1, 1, 1, 8))
