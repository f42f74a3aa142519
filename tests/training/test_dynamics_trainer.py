"""Dynamics training step: single images trained without context, RMS-normalised step, windows, lr schedule."""

import pytest
import torch

from system.objectives.shortcut import ShortcutConfig
from system.training.dynamics_trainer import DynamicsTrainConfig, DynamicsTrainer, lr_at, sample_windows
from tests.helpers.dynamics import one_thread, random_actions, tiny_model  # noqa: F401 (one_thread: autouse fixture)


def test_image_frames_are_trained_without_context():
    """With row 0 an image row, the loss gradient at its frame 0 ignores its later frames (no frame reads
    another); as a sequence row (images=0), the later frames read frame 0 and the gradient changes."""
    model = tiny_model(seed=0)
    cfg = DynamicsTrainConfig(shortcut=ShortcutConfig(bootstrap_warmup=10**9))
    z = torch.rand(2, 3, 4, 8) * 2 - 1
    actions = random_actions(2, 3)

    def grad_at_frame0(z_in, images):
        z_in = z_in.clone().requires_grad_(True)
        loss, _ = DynamicsTrainer(model, cfg, seed=0).loss(z_in, actions, images)  # same noise each call
        return torch.autograd.grad(loss, z_in)[0][0, 0]

    other = z.clone()
    other[0, 1:] = torch.rand(2, 4, 8) * 2 - 1
    assert torch.equal(grad_at_frame0(z, 1), grad_at_frame0(other, 1))
    assert (grad_at_frame0(z, 0) - grad_at_frame0(other, 0)).abs().max() > 1e-6


def test_trainer_step_runs_and_reports():
    model = tiny_model(seed=0)
    cfg = DynamicsTrainConfig(shortcut=ShortcutConfig(bootstrap_warmup=0), warmup_steps=1)
    trainer = DynamicsTrainer(model, cfg, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    m = trainer.train_step(torch.rand(4, 3, 4, 8) * 2 - 1, random_actions(4, 3), images=1)
    assert {"loss", "flow_mse", "bootstrap_mse", "grad_norm", "loss_rms"} <= set(m)
    assert m["bootstrap_rows"] > 0 and trainer.step == 1
    assert any((p - b).abs().max() > 0 for p, b in zip(model.parameters(), before))


def test_sample_windows_stay_inside_episodes():
    episodes = [torch.full((5, 1, 1), float(i)) + torch.arange(5.0).view(5, 1, 1) / 10 for i in range(3)]
    actions = [torch.arange(5).view(5, 1) for _ in range(3)]
    z, a = sample_windows(episodes, actions, batch=32, length=4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (32, 4, 1, 1) and a.shape == (32, 4, 1)
    episode = z.floor()
    assert (episode == episode[:, :1]).all()                          # one episode per window
    steps = (z - episode) * 10
    assert torch.allclose(steps[:, 1:] - steps[:, :-1], torch.ones(32, 3, 1, 1), atol=1e-4)  # consecutive
    assert torch.equal(a[:, 1:] - a[:, :-1], torch.ones(32, 3, 1, dtype=a.dtype))


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = DynamicsTrainConfig(lr=1e-3, warmup_steps=10, steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(0.55e-3)
    assert lr_at(110, cfg) == pytest.approx(1e-4) and lr_at(500, cfg) == pytest.approx(1e-4)
