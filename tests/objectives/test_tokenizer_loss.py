"""Tokenizer objective (Eq. 5): each term divided by its own detached running RMS, gradient kept."""

import torch

from system.objectives.tokenizer_loss import TokenizerLoss
from tests.model.test_tokenizer import tiny_tokenizer_config


def test_loss_is_rms_normalised_and_keeps_its_gradient():
    cfg = tiny_tokenizer_config()
    perceptual = lambda x, y: (x - y).abs().mean((1, 2, 3)) * 10.0   # a stand-in LPIPS with another scale
    loss_fn = TokenizerLoss(cfg, perceptual)
    frames = torch.rand(2, 2, 16, 24, 3)
    for _ in range(3):
        loss_fn(torch.rand_like(frames), frames)
    recon = torch.rand_like(frames, requires_grad=True)
    loss, metrics = loss_fn(recon, frames)
    expected = metrics["mse"] / loss_fn.mse_norm.rms + 0.2 * metrics["lpips"] / loss_fn.lpips_norm.rms
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, recon)
    assert grad.abs().sum() > 0
    raw_mse_grad = 2 * (recon - frames).detach() / frames.numel()
    raw_lp_grad = torch.sign(recon - frames).detach() * 10.0 / (frames.numel() // 2) / 2  # mean over 4 images
    torch.testing.assert_close(grad, raw_mse_grad / loss_fn.mse_norm.rms + 0.2 * raw_lp_grad / loss_fn.lpips_norm.rms)
