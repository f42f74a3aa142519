"""Causal tokenizer: patching, asymmetric masks, the bottleneck, causality, MAE masking, input errors."""

import pytest
import torch

from system.model.tokenizer import Tokenizer, TokenizerConfig, patchify, unpatchify
from system.model.transformer import TransformerConfig


def tiny_tokenizer_config(image_size=(16, 24), patch=8, **kw) -> TokenizerConfig:
    net = TransformerConfig(dim=32, depth=2, num_heads=4, num_kv_heads=2, temporal_every=2, context=8,
                            attention="dense")
    return TokenizerConfig(image_size=image_size, patch_size=patch, num_latents=4, latent_dim=3,
                           encoder=net, decoder=net, **kw)


def test_patchify_round_trip_with_padding():
    frames = torch.rand(2, 3, 20, 28, 3)
    patches = patchify(frames, 8)
    assert patches.shape == (2, 3, 3 * 4, 8 * 8 * 3)   # 20x28 padded to 24x32
    assert torch.equal(unpatchify(patches, 8, (20, 28), 3), frames)
    # the padded border is zero: the last patch row covers image rows 16..23, of which 20..23 are padding
    last_row = patches[:, :, -4:].reshape(2, 3, 4, 8, 8, 3)
    assert torch.count_nonzero(last_row[:, :, :, 4:]) == 0


def test_decoder_sees_the_input_only_through_the_bottleneck():
    """Pin the bottleneck to a constant: the reconstruction must then be independent of the input frames."""
    tok = Tokenizer(tiny_tokenizer_config())
    constant = torch.rand(1, 2, 4, 3) * 2 - 1
    tok.to_bottleneck.register_forward_hook(lambda mod, inp, out: torch.atanh(constant).expand_as(out))
    frames = torch.rand(1, 2, 16, 24, 3, requires_grad=True)
    recon, z = tok(frames)
    torch.testing.assert_close(z, constant.expand_as(z))
    (grad,) = torch.autograd.grad(recon.sum(), frames, allow_unused=True)
    assert grad is None or torch.count_nonzero(grad) == 0
    other, _ = tok(torch.rand(1, 2, 16, 24, 3))
    torch.testing.assert_close(recon, other)


def test_asymmetric_masks():
    """Encoder: patches read only patches, latents read patches. Decoder: latents read only latents,
    readouts read latents."""
    tok = Tokenizer(tiny_tokenizer_config())
    cfg = tok.cfg
    frames = torch.rand(1, 2, 16, 24, 3)
    # encoder patch outputs do not depend on the latent query embeddings; latent outputs depend on patches
    patches = tok.patch_embed(patchify(frames, cfg.patch_size)) + tok.patch_pos
    latents = tok.latent_queries.expand(1, 2, -1, -1).clone().requires_grad_(True)
    patches.retain_grad()
    h = tok.encoder(torch.cat([patches, latents], 2))
    (g_lat,) = torch.autograd.grad(h[:, :, tok.enc_layout.slice("patches")].sum(), latents, retain_graph=True)
    assert torch.count_nonzero(g_lat) == 0
    (g_patch,) = torch.autograd.grad(h[:, :, tok.enc_layout.slice("latents")].sum(), patches)
    assert g_patch.abs().sum() > 0
    # decoder latent outputs do not depend on readout queries; readouts depend on the latents
    lat = torch.randn(1, 2, cfg.num_latents, cfg.decoder.dim, requires_grad=True)
    reads = tok.readout_queries.expand(1, 2, -1, -1).clone().requires_grad_(True)
    h = tok.decoder(torch.cat([lat, reads], 2))
    (g_reads,) = torch.autograd.grad(h[:, :, tok.dec_layout.slice("latents")].sum(), reads, retain_graph=True)
    assert torch.count_nonzero(g_reads) == 0
    (g_lat,) = torch.autograd.grad(h[:, :, tok.dec_layout.slice("readouts")].sum(), lat)
    assert g_lat.abs().sum() > 0


def test_tokenizer_is_causal_in_time():
    tok = Tokenizer(tiny_tokenizer_config()).eval()
    frames = torch.rand(1, 4, 16, 24, 3)
    changed = frames.clone()
    changed[:, 2] = torch.rand(16, 24, 3)
    with torch.no_grad():
        (r1, z1), (r2, z2) = tok(frames), tok(changed)
    assert torch.equal(z1[:, :2], z2[:, :2]) and torch.equal(r1[:, :2], r2[:, :2])
    assert (z1[:, 2:] - z2[:, 2:]).abs().max() > 0   # frames 2 and 3 see the change
    assert (z1[:, 3] - z2[:, 3]).abs().max() > 0


def test_bottleneck_shape_and_range():
    tok = Tokenizer(tiny_tokenizer_config())
    z = tok.encode(torch.rand(2, 3, 16, 24, 3))
    assert z.shape == (2, 3, 4, 3) and z.abs().max() < 1.0
    assert tok.decode(z).shape == (2, 3, 16, 24, 3)


def test_mae_mask_probability_is_drawn_per_image():
    tok = Tokenizer(tiny_tokenizer_config(image_size=(64, 64), patch=4))  # 256 patches per image
    mask = tok.sample_mask(64, 8, generator=torch.Generator().manual_seed(0))
    fractions = mask.float().mean(-1).flatten()     # one masking fraction per image
    # per image p ~ U(0, 0.9): fractions spread over [0, 0.9] (std 0.26); a per-batch or fixed p would not
    assert fractions.std() > 0.2
    assert 0.38 < fractions.mean() < 0.52
    assert fractions.max() < 0.97 and fractions.min() < 0.05


def test_masked_patches_are_replaced_by_the_learned_embedding():
    tok = Tokenizer(tiny_tokenizer_config())
    everything = torch.ones(1, 2, tok.cfg.num_patches, dtype=torch.bool)
    z_a = tok.encode(torch.rand(1, 2, 16, 24, 3), everything)
    z_b = tok.encode(torch.rand(1, 2, 16, 24, 3), everything)
    torch.testing.assert_close(z_a, z_b)   # nothing of the input survives full masking
    z_c = tok.encode(torch.rand(1, 2, 16, 24, 3))
    assert (z_a - z_c).abs().max() > 1e-4
    z_a.sum().backward()
    assert tok.mask_embed.grad.abs().sum() > 0


def test_wrong_frames_give_clear_errors():
    tok = Tokenizer(tiny_tokenizer_config())
    with pytest.raises(ValueError, match=r"\(B, T, 16, 24, 3\)"):
        tok.encode(torch.rand(2, 16, 24, 3))
    with pytest.raises(ValueError, match="float"):
        tok.encode(torch.zeros(1, 1, 16, 24, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="decode expects"):
        tok.decode(torch.zeros(1, 1, 5, 3))


def test_latents_do_not_depend_on_the_length_of_the_window_encoded():
    """Frame t's latents depend on its latent_receptive_field frames only: encoded inside a 12-frame window or
    in the window of just those frames, they are the same (the dynamics encodes long windows)."""
    net = TransformerConfig(dim=32, depth=4, num_heads=4, num_kv_heads=2, temporal_every=2, context=2,
                            attention="dense")
    cfg = TokenizerConfig(image_size=(16, 24), patch_size=8, num_latents=4, latent_dim=3, encoder=net, decoder=net)
    tok = Tokenizer(cfg).eval()
    field = cfg.latent_receptive_field
    assert field == 3
    frames = torch.rand(1, 12, 16, 24, 3)
    with torch.no_grad():
        long = tok.encode(frames)
        for t in range(field - 1, 12):
            short = tok.encode(frames[:, t - field + 1:t + 1])
            torch.testing.assert_close(long[:, t], short[:, -1], atol=1e-5, rtol=1e-5)
        assert (long[:, 5] - tok.encode(frames[:, 4:6])[:, -1]).abs().max() > 1e-4  # a shorter window differs


def test_a_frame_decodes_the_same_from_its_last_receptive_field_latents():
    """decoder_receptive_field latents are enough to decode a frame as the whole sequence decodes it (the play
    page decodes one frame at a time); one latent fewer is not."""
    net = TransformerConfig(dim=32, depth=4, num_heads=4, num_kv_heads=2, temporal_every=2, context=2,
                            attention="dense")
    cfg = TokenizerConfig(image_size=(16, 24), patch_size=8, num_latents=4, latent_dim=3, encoder=net, decoder=net)
    tok = Tokenizer(cfg).eval()
    field = cfg.decoder_receptive_field
    assert field == 3 and cfg.temporal_receptive_field == 5
    z = torch.rand(1, 10, 4, 3) * 2 - 1
    with torch.no_grad():
        whole = tok.decode(z)
        for t in range(field - 1, 10):
            torch.testing.assert_close(whole[:, t], tok.decode(z[:, t - field + 1:t + 1])[:, -1], atol=1e-5, rtol=1e-5)
        assert (whole[:, 7] - tok.decode(z[:, 6:8])[:, -1]).abs().max() > 1e-4


@pytest.mark.parametrize("patch_hidden", [0, 64])
def test_a_patch_mlp_lifts_the_decoders_pixels_off_a_model_width_subspace(patch_hidden):
    """With linear patch maps every decoded patch lies in a dim-dimensional affine subspace of its pixel values
    (the PCA-like cap on reconstruction quality); the per-patch MLP (patch_hidden > 0) is not confined to it."""
    net = TransformerConfig(dim=16, depth=2, num_heads=2, num_kv_heads=1, temporal_every=2, context=2,
                            attention="dense")
    cfg = TokenizerConfig(image_size=(8, 8), patch_size=8, num_latents=2, latent_dim=8, encoder=net, decoder=net,
                          patch_hidden=patch_hidden)   # one patch of 192 pixel values, model width 16
    torch.manual_seed(0)
    tok = Tokenizer(cfg).eval()
    with torch.no_grad():
        pixels = tok.decode(torch.rand(400, 1, 2, 8) * 2 - 1).reshape(400, -1)
    singular = torch.linalg.svdvals(pixels - pixels.mean(0))
    rank = int((singular > singular[0] * 1e-4).sum())
    assert (rank <= 16) == (patch_hidden == 0), rank
