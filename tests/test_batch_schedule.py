"""Batch schedule: alternating short/long batches, single-image sequences; the trainer step on top of it."""

import pytest
import torch

from system.batch_schedule import BatchSchedule, BatchScheduleConfig, split_images
from system.dynamics_train import DynamicsTrainConfig, DynamicsTrainer, sample_windows
from system.shortcut import ShortcutConfig
from helpers_dynamics import one_thread, random_actions, tiny_model  # noqa: F401 (one_thread: autouse fixture)


def test_paper_defaults_and_alternation():
    cfg = BatchScheduleConfig()
    assert (cfg.short_length, cfg.long_length, cfg.image_fraction) == (64, 256, 0.3)
    schedule = BatchSchedule(BatchScheduleConfig(batch_size=16, long_every=4))
    specs = [schedule.spec(step) for step in range(8)]
    assert [s.length for s in specs] == [64, 64, 64, 256] * 2
    assert [s.batch for s in specs[:4]] == [16, 16, 16, 4]      # long batches hold the same frames
    assert [s.images for s in specs[:4]] == [5, 5, 5, 1]         # round(0.3 * batch)
    finetune = BatchSchedule(BatchScheduleConfig(long_every=4, long_only_after=5))
    assert [finetune.spec(step).length for step in range(3, 8)] == [256, 64, 256, 256, 256]


def test_long_batches_must_exceed_the_context():
    BatchSchedule(BatchScheduleConfig()).check_context(192)
    with pytest.raises(ValueError, match="exceed the model context"):
        BatchSchedule(BatchScheduleConfig(long_length=128)).check_context(192)


def test_single_images_become_independent_length_one_sequences_without_actions():
    z = torch.arange(4 * 3).float().view(4, 3, 1, 1)
    actions = torch.arange(4 * 3).view(4, 3, 1)
    (z_seq, a_seq), (z_img, a_img) = split_images(z, actions, images=1)
    assert torch.equal(z_seq, z[1:]) and torch.equal(a_seq, actions[1:])
    assert z_img.shape == (3, 1, 1, 1) and torch.equal(z_img.flatten(), z[0].flatten())
    assert (a_img == -1).all()
    (z_seq, _), (z_img, a_img) = split_images(z, None, images=0)
    assert z_seq.shape[0] == 4 and z_img.shape[0] == 0 and a_img is None


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
