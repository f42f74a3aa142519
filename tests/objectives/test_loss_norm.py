"""Running-RMS loss normalisation keeps the gradient: d(loss / rms)/dθ == (d loss/dθ) / rms."""

import torch

from system.objectives.loss_norm import RunningRMS


def test_gradient_is_raw_gradient_scaled_by_inverse_rms():
    torch.manual_seed(0)
    norm = RunningRMS(decay=0.9)
    for value in (3.0, 5.0, 4.0):  # some history so the RMS is not just the current loss
        norm(torch.tensor(value))
    w = torch.randn(5, requires_grad=True)
    x = torch.randn(5)
    raw = ((w * x).sum() - 1.0) ** 2
    (raw_grad,) = torch.autograd.grad(raw, w, retain_graph=True)
    normalized = norm(raw)
    (norm_grad,) = torch.autograd.grad(normalized, w)
    rms = norm.rms.item()
    assert norm_grad.abs().max() > 0
    torch.testing.assert_close(norm_grad, raw_grad / rms)
    torch.testing.assert_close(normalized, raw / rms)


def test_rms_tracks_the_loss_scale_with_bias_correction():
    norm = RunningRMS(decay=0.99)
    norm(torch.tensor(10.0))
    assert abs(norm.rms.item() - 10.0) < 1e-4  # one update already estimates the scale, not 10 * sqrt(0.01)
    for _ in range(2000):
        norm(torch.tensor(2.0))
    assert abs(norm.rms.item() - 2.0) < 1e-3


def test_fresh_module_in_eval_leaves_the_loss_unchanged_and_does_not_update():
    norm = RunningRMS().eval()
    loss = torch.tensor(7.0)
    assert norm(loss).item() == 7.0
    assert norm.updates.item() == 0
