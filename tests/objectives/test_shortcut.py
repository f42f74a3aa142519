"""Shortcut forcing: the (tau, d) grid, the bootstrap target, (1 - tau)^2, w(tau), warm-up (checklist 1-6)."""

import math

import pytest
import torch

from system.model.dynamics import DynamicsOutput
from system.objectives.shortcut import (
    FrameDraws,
    ShortcutConfig,
    bootstrap_target,
    noise_latents,
    num_bootstrap_rows,
    ramp_weight,
    sample_signal,
    shortcut_loss,
)
from tests.helpers.dynamics import one_thread, tiny_model  # noqa: F401 (one_thread: autouse fixture)


class StandIn:
    """A 'model' whose x-prediction is a constant chosen per (tau, d): every number below is hand-computed."""

    k_max = 64

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, z, tau, d, actions=None, task=None):
        self.calls.append((tau.clone(), d.clone()))
        out = torch.empty_like(z)
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                out[i, j] = self.table[(float(tau[i, j]), float(d[i, j]))]
        return DynamicsOutput(out, None)


def test_tau_is_always_on_the_grid_of_its_step_size():
    k_max = 64
    tau, d = sample_signal(256, 16, k_max, bootstrap_rows=64, generator=torch.Generator().manual_seed(0))
    levels = -torch.log2(d)
    assert torch.equal(levels, levels.round()) and levels.min() >= 0 and levels.max() <= math.log2(k_max)
    steps = tau / d
    assert torch.equal(steps, steps.round())          # tau = i * d exactly
    assert (tau >= 0).all() and (tau <= 1 - d).all()  # i in {0, ..., 1/d - 1}: tau = 1 never sampled
    # flow rows use d_min; bootstrap rows draw every step size per frame, d_min included
    assert (d[64:] == 1 / k_max).all()
    assert set(levels[:64].unique().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    # tau is uniform over the grid: flow rows hit all 64 levels, with no level over- or under-represented
    counts = torch.bincount((tau[64:] * k_max).long().flatten(), minlength=k_max).float()
    assert counts.min() > 0.5 * counts.mean() and counts.max() < 1.5 * counts.mean()


def test_every_frame_draws_its_own_signal_level():
    """Diffusion forcing (Eq. 6): tau is drawn per frame, independently of the other frames of its row. A
    per-sequence tau makes neighbouring frames equal; here they agree only at the chance rate of 1/64."""
    tau, d = sample_signal(512, 16, 64, bootstrap_rows=0, generator=torch.Generator().manual_seed(1))
    same = (tau[:, 1:] == tau[:, :-1]).float().mean()
    assert same < 0.03, same                                    # chance: 1/64 = 0.016
    centred = tau - tau.mean()
    correlation = (centred[:, 1:] * centred[:, :-1]).mean() / centred.var()
    assert correlation.abs() < 0.05, correlation
    assert (tau.std(dim=1) > 0).float().mean() > 0.99          # nearly every row holds several levels


def test_bootstrap_rows_and_warmup():
    cfg = ShortcutConfig(bootstrap_fraction=0.25, bootstrap_warmup=100)
    assert num_bootstrap_rows(16, cfg, step=99) == 0
    assert num_bootstrap_rows(16, cfg, step=100) == 4
    assert ShortcutConfig().bootstrap_fraction == 0.25


def test_ramp_weight():
    assert torch.allclose(ramp_weight(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([0.1, 0.55, 1.0]))


def test_bootstrap_target_is_the_mean_of_two_half_step_velocities():
    # z~ = 0.2 at tau = 1/2 with d = 1/2. The model predicts 1.0 at (1/2, 1/4) and 2.0 at (3/4, 1/4).
    #   b'  = (1.0 - 0.2) / (1 - 1/2) = 1.6,   z' = 0.2 + 1.6 * 1/4 = 0.6
    #   b'' = (2.0 - 0.6) / (1 - 3/4) = 5.6,   target = (1.6 + 5.6) / 2 = 3.6
    # (the mean of the x-predictions would be 1.5; as a velocity from z~, (1.5 - 0.2) / 0.5 = 2.6)
    model = StandIn({(0.5, 0.25): 1.0, (0.75, 0.25): 2.0})
    z = torch.full((1, 1, 1, 1), 0.2)
    target = bootstrap_target(model, z, torch.tensor([[0.5]]), torch.tensor([[0.5]]))
    assert target.item() == pytest.approx(3.6)
    (tau1, d1), (tau2, d2) = model.calls
    assert (tau1.item(), d1.item(), tau2.item(), d2.item()) == (0.5, 0.25, 0.75, 0.25)


def test_training_rows_hold_what_a_k4_rollout_feeds():
    """Generation feeds the frame it steps at d = 1/4 next to context frames at d_min. Bootstrap rows mix the
    two per frame, so that combination is trained: most bootstrap rows of 16 frames hold both."""
    tau, d = sample_signal(64, 16, 64, bootstrap_rows=64, generator=torch.Generator().manual_seed(2))
    both = ((d == 1 / 64).any(1) & (d == 1 / 4).any(1)).float().mean()
    assert both > 0.8, both
    _, d = sample_signal(64, 16, 64, bootstrap_rows=64, generator=torch.Generator().manual_seed(2), mixed=False)
    assert (d > 1 / 64).all()   # the ablation: bootstrap rows without d_min frames


def test_clean_context_fraction_makes_that_share_of_flow_frames_clean():
    """clean_context_fraction = f: a share f of the d_min frames sits at tau = 1 - d_min, the rest stays
    uniform on the grid, stepping frames of bootstrap rows are untouched, and f = 0 draws what it always drew."""
    g = lambda: torch.Generator().manual_seed(3)
    tau0, d0 = sample_signal(256, 16, 64, bootstrap_rows=64, generator=g())
    tau, d = sample_signal(256, 16, 64, bootstrap_rows=64, generator=g(), clean_fraction=0.5)
    assert torch.equal(d, d0)                                   # step sizes as before
    flow = d == 1 / 64
    clean = flow & (tau == 63 / 64) & (tau0 != 63 / 64)
    share = clean.sum() / flow.sum()
    assert 0.45 < share < 0.53, share                           # 0.5 * 63/64 of them moved to the top
    assert torch.equal(tau[~flow], tau0[~flow])                 # stepping frames keep their tau
    kept = flow & (tau != 63 / 64)
    assert torch.equal(tau[kept], tau0[kept])                   # the others keep theirs
    # through the loss, with per-row draws: the model sees the clean frames
    seen = []
    def record(z, tau, d, actions=None, task=None):
        seen.append(tau.clone())
        return DynamicsOutput(torch.zeros_like(z), None)
    record.k_max = 64
    cfg = ShortcutConfig(clean_context_fraction=0.5, bootstrap_warmup=10**9)
    shortcut_loss(record, torch.zeros(32, 16, 2, 4), None, cfg, step=0, generator=torch.Generator().manual_seed(4))
    draws = FrameDraws.draw(list(range(32)), 16, (2, 4))   # the trainer's path: per-row draws
    shortcut_loss(record, torch.zeros(32, 16, 2, 4), None, cfg, step=0, draws=draws)
    for tau in seen:
        assert 0.4 < (tau == 63 / 64).float().mean() < 0.6
    with pytest.raises(ValueError, match="clean_context_fraction"):
        ShortcutConfig(clean_context_fraction=1.0)


def test_d_min_frames_of_a_bootstrap_row_are_held_like_generation_context():
    """Frame 0 (d = d_min) stays at (z~, tau, d_min) in both half-step passes while frame 1 (d = 1/2) steps;
    frame 0 then takes the flow loss, frame 1 the bootstrap loss."""
    # frame 1 as in test_bootstrap_target_is_the_mean_of_two_half_step_velocities: target 3.6
    model = StandIn({(0.25, 1 / 64): -0.3, (0.5, 0.25): 1.0, (0.75, 0.25): 2.0, (0.5, 0.5): 0.9})
    z1 = torch.tensor([0.5, 0.6]).view(1, 2, 1, 1)
    z0 = torch.tensor([0.0, -0.2]).view(1, 2, 1, 1)
    tau, d = torch.tensor([[0.25, 0.5]]), torch.tensor([[1 / 64, 0.5]])
    cfg = ShortcutConfig(bootstrap_fraction=1.0, bootstrap_warmup=0)
    loss, metrics = shortcut_loss(model, z1, None, cfg, step=0, noise=z0, signal=(tau, d))
    _, (tau1, d1), (tau2, d2) = model.calls        # the prediction, then the two half-step passes
    assert (tau1[0, 0].item(), d1[0, 0].item(), tau2[0, 0].item(), d2[0, 0].item()) == (0.25, 1 / 64, 0.25, 1 / 64)
    assert (tau1[0, 1].item(), d1[0, 1].item(), tau2[0, 1].item(), d2[0, 1].item()) == (0.5, 0.25, 0.75, 0.25)
    # frame 0: w(1/4) (-0.3 - 0.5)^2 = 0.208; frame 1: w(1/2) (1/2)^2 (1.4 - 3.6)^2 = 0.6655; mean 0.43675
    assert loss.item() == pytest.approx(0.43675, abs=1e-6)
    assert metrics["bootstrap_mse"].item() == pytest.approx(0.25 * 4.84, abs=1e-6)


def test_shortcut_loss_by_hand():
    # Row 0 bootstraps: tau = 1/2, d = 1/2, z1 = 0.6, z0 = -0.2 -> z~ = 0.2; bootstrap target 3.6 (above).
    #   the model predicts 0.9 at (1/2, 1/2): velocity (0.9 - 0.2) / (1/2) = 1.4
    #   loss = w(1/2) (1 - 1/2)^2 (1.4 - 3.6)^2 = 0.55 * 0.25 * 4.84 = 0.6655
    # Row 1 is a flow row: tau = 1/4, d = 1/64, z1 = 0.5; the model predicts -0.3 there.
    #   loss = w(1/4) (-0.3 - 0.5)^2 = 0.325 * 0.64 = 0.208
    # mean over the two frames: 0.43675. Without (1 - tau)^2 it would be 1.435; without w(tau), 0.9250.
    model = StandIn({(0.5, 0.25): 1.0, (0.75, 0.25): 2.0, (0.5, 0.5): 0.9, (0.25, 1 / 64): -0.3})
    z1 = torch.tensor([0.6, 0.5]).view(2, 1, 1, 1)
    z0 = torch.tensor([-0.2, 0.0]).view(2, 1, 1, 1)
    tau, d = torch.tensor([[0.5], [0.25]]), torch.tensor([[0.5], [1 / 64]])
    cfg = ShortcutConfig(bootstrap_fraction=0.5, bootstrap_warmup=0)
    loss, metrics = shortcut_loss(model, z1, None, cfg, step=0, noise=z0, signal=(tau, d))
    assert loss.item() == pytest.approx(0.43675, abs=1e-6)
    assert metrics["bootstrap_mse"].item() == pytest.approx(0.25 * 4.84, abs=1e-6)
    assert metrics["flow_mse"].item() == pytest.approx(0.64, abs=1e-6)


def test_noising_convention():
    z1, z0 = torch.ones(1, 2, 1, 1), -torch.ones(1, 2, 1, 1)
    z = noise_latents(z1, z0, torch.tensor([[0.0, 0.75]]))
    assert z.flatten().tolist() == [-1.0, 0.5]  # tau = 0 is pure noise, tau -> 1 clean


def test_bootstrap_target_carries_no_gradient():
    torch.manual_seed(0)
    model = tiny_model(k_max=16)
    z = torch.randn(2, 3, 4, 8)
    tau, d = torch.full((2, 3), 0.5), torch.full((2, 3), 0.25)
    assert not bootstrap_target(model, z, tau, d).requires_grad
