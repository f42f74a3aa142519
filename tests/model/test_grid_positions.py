"""2D space positions: grid coordinates of patches, latents and packed tokens, and the axial RoPE scores they give."""

import pytest
import torch

from system.model.attention import Attention
from system.model.dynamics import Dynamics, DynamicsConfig, dynamics_grid_coords
from system.model.grid_positions import latent_coords, latent_grid_shape, packed_coords, patch_coords
from system.model.layout import TokenLayout
from system.model.rope import grid_rope_tables, rope_tables
from system.model.tokenizer import TokenizerConfig, tokenizer_grid_coords
from system.model.transformer import BlockCausalTransformer, TransformerConfig


def test_patch_coords_follow_patchify_raster_order():
    coords = patch_coords((3, 4))
    assert coords.shape == (12, 2)
    assert coords[5].tolist() == [1.0, 1.0] and coords[11].tolist() == [2.0, 3.0]


def test_as_many_latents_as_patches_sit_on_their_patches():
    torch.testing.assert_close(latent_coords(64, (8, 8)), patch_coords((8, 8)))
    torch.testing.assert_close(latent_coords(12, (3, 4)), patch_coords((3, 4)))


def test_fewer_latents_form_their_own_grid_spread_over_the_frame():
    """The paper's 512 latents over 24 x 40 patches: a 16 x 32 grid (aspect nearest 40 / 24), centred cells."""
    assert latent_grid_shape(512, (24, 40)) == (16, 32)
    coords = latent_coords(512, (24, 40))
    assert coords[:, 0].min() > 0 and coords[:, 0].max() < 23 and coords[:, 1].min() > 0 and coords[:, 1].max() < 39
    torch.testing.assert_close(coords.mean(0), torch.tensor([11.5, 19.5]))   # the frame's centre
    assert len({tuple(c) for c in coords.tolist()}) == 512


def test_packed_tokens_sit_at_the_mean_of_their_latents():
    coords = packed_coords(patch_coords((2, 4)), 2)         # latents (0,0),(0,1) -> token 0, ...
    assert coords.tolist() == [[0.0, 0.5], [0.0, 2.5], [1.0, 0.5], [1.0, 2.5]]
    with pytest.raises(ValueError, match="do not pack"):
        packed_coords(patch_coords((1, 3)), 2)


def test_layout_places_spatial_modalities_and_centres_the_rest():
    layout = TokenLayout.build({"latents": 4, "registers": 2, "agent": 1}, {"latents": "*", "registers": "*"})
    coords = layout.grid_coords({"latents": patch_coords((2, 2))})
    assert coords.shape == (7, 2)
    torch.testing.assert_close(coords[:4], patch_coords((2, 2)))
    assert coords[4:].tolist() == [[0.5, 0.5]] * 3
    with pytest.raises(ValueError, match="'latents' has 4 tokens"):
        layout.grid_coords({"latents": patch_coords((3, 3))})


def scores(rope, length: int, head_dim: int = 16) -> torch.Tensor:
    """Space-layer logits of one head when every token carries the same content: what position alone adds."""
    torch.manual_seed(0)
    attn = Attention(head_dim, 1, 1, softcap=0.0, kernel="dense")
    q, k, _ = attn.project(torch.randn(1, 1, head_dim).expand(1, length, head_dim), rope)
    return (q @ k.transpose(-1, -2))[0, 0].detach()


def test_2d_rope_scores_depend_only_on_the_2d_offset():
    """Two pairs of patches with the same (d_row, d_col) get the same score, also across a row boundary, where
    raster indices (1D RoPE) make the offsets differ: (0, 7) -> (1, 0) is index offset 1 but 2D offset (1, -7)."""
    coords = patch_coords((4, 8))
    grid = scores(grid_rope_tables(coords, 16, 10.0), 32)
    index = scores(rope_tables(torch.arange(32), 16, 10000.0), 32)
    same_offset = [((0, 1), (9, 10)), ((7, 8), (15, 16)), ((3, 12), (19, 28)), ((20, 13), (28, 21))]
    for (i, j), (a, b) in same_offset:
        assert torch.equal(coords[j] - coords[i], coords[b] - coords[a])
        assert grid[i, j] == pytest.approx(grid[a, b].item(), abs=1e-5)
    # raster neighbours across a row end are not 2D neighbours: 1D RoPE scores them as it scores (0, 1)
    assert index[7, 8] == pytest.approx(index[0, 1].item(), abs=1e-5)
    assert grid[7, 8] != pytest.approx(grid[0, 1].item(), abs=1e-3)
    # and the patch below is one offset, wherever the row ends: 1D RoPE sees it 8 tokens away
    assert grid[0, 8] == pytest.approx(grid[5, 13].item(), abs=1e-5)


def test_grid_positions_need_coordinates_and_a_head_dim_divisible_by_4():
    layout = TokenLayout.build({"patches": 4}, {"patches": "*"})
    cfg = TransformerConfig(dim=32, depth=2, num_heads=4, temporal_every=2, context=2, space_positions="grid")
    with pytest.raises(ValueError, match="needs the \\(row, col\\) of each of the 4 tokens"):
        BlockCausalTransformer(cfg, layout)
    with pytest.raises(ValueError, match="divisible by 4"):
        TransformerConfig(dim=24, depth=2, num_heads=4, temporal_every=2, context=2, space_positions="grid")


def test_tokenizer_and_dynamics_tokens_get_their_grid_coordinates():
    net = TransformerConfig(dim=32, depth=2, num_heads=2, temporal_every=2, context=2, space_positions="grid")
    tok_cfg = TokenizerConfig(image_size=(16, 32), patch_size=8, num_latents=8, latent_dim=2, encoder=net,
                              decoder=net)
    enc, dec = tokenizer_grid_coords(tok_cfg)
    torch.testing.assert_close(enc[:8], patch_coords((2, 4)))      # patches, then latents on the same cells
    torch.testing.assert_close(enc[8:], patch_coords((2, 4)))
    torch.testing.assert_close(dec[8:], patch_coords((2, 4)))      # readouts on their patches
    dyn_cfg = DynamicsConfig(transformer=net, latent_tokens=8, latent_dim=2, packed_tokens=4, registers=1,
                             agent_tokens=1, k_max=4, patch_grid=tok_cfg.grid)
    coords = dynamics_grid_coords(dyn_cfg)
    torch.testing.assert_close(coords[:4], packed_coords(patch_coords((2, 4)), 2))
    assert torch.equal(Dynamics(dyn_cfg).transformer.space_positions, coords)
    with pytest.raises(ValueError, match="patch_grid"):
        DynamicsConfig(transformer=net, latent_tokens=8, latent_dim=2, packed_tokens=4)
