"""Teacher-forced one-step figures: static/moving split, copy baseline, action use, the signal levels fed."""

import pytest
import torch

from system.imagination.one_step import one_step_figures, target_samples
from system.model.dynamics import DynamicsOutput

SHIFT = torch.tensor([0.0, 0.5, -0.5])   # action 0 leaves the frame as it is, 1 and 2 move every latent


def windows(n=4, w=12, seed=0):
    """z_t = z_{t-1} + SHIFT[a_t]: the action of step t produced frame t."""
    g = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, 3, (n, w, 1), generator=g)
    z = torch.randn(n, 1, 2, 3, generator=g).repeat(1, w, 1, 1)
    z = z + SHIFT[actions[..., 0]].cumsum(1)[..., None, None]
    return z, actions


class StandIn:
    """Predicts frame t from the (nearly clean) frame t - 1 it is given: plus SHIFT[a_t] if it uses actions."""

    k_max = 64

    def __init__(self, uses_action: bool):
        self.uses_action, self.calls = uses_action, []

    def __call__(self, z, tau, d, actions=None, task=None):
        self.calls.append((tau.clone(), d.clone(), actions.clone()))
        previous = z[:, -2] / tau[:, -2, None, None]        # context at 63/64: noise / 63 left in it
        step = SHIFT[actions[:, -1, 0]][:, None, None] if self.uses_action else 0.0
        out = torch.zeros_like(z)
        out[:, -1] = previous + step
        return DynamicsOutput(out, None)


def test_a_model_that_uses_the_action_beats_copy_and_loses_with_another_action():
    z, actions = windows()
    figures = one_step_figures(StandIn(uses_action=True), z, actions, context=3, taus=(0.0,),
                               generator=torch.Generator().manual_seed(1))
    moving = (actions[:, 3:, 0] != 0).float().mean()
    assert figures["static_share"] == pytest.approx(1 - float(moving))
    assert figures["samples"] == 4 * 9
    assert figures["copy_mse_moving"] == pytest.approx(0.25)                  # every moving step shifts by 0.5
    assert figures["copy_mse"] == pytest.approx(0.25 * float(moving), rel=1e-5)
    assert figures["mse_moving_tau0"] < 1e-3 and figures["mse_static_tau0"] < 1e-3
    # another sample's action is often a different move: the error jumps
    assert figures["mse_moving_other_action_tau0"] > 0.05


def test_a_copier_matches_copy_and_is_blind_to_the_action():
    z, actions = windows(seed=2)
    figures = one_step_figures(StandIn(uses_action=False), z, actions, context=4, taus=(0.0, 0.5))
    for tau in ("0", "0.5"):
        assert figures[f"mse_tau{tau}"] == pytest.approx(figures["copy_mse"], abs=3e-3)   # noise / 63 left
        assert figures[f"mse_moving_other_action_tau{tau}"] == figures[f"mse_moving_tau{tau}"]


def test_context_goes_in_clean_and_the_target_at_the_given_signal_level():
    z, actions = windows(n=2, w=6)
    model = StandIn(uses_action=False)
    one_step_figures(model, z, actions, context=2, taus=(0.25,))
    for tau, d, _ in model.calls:
        assert (tau[:, :-1] == 63 / 64).all() and (tau[:, -1] == 0.25).all() and (d == 1 / 64).all()
    (_, _, true), (_, _, other) = model.calls
    # the other action: the same step of the other window (4 targets per window), the context's actions kept
    assert torch.equal(other[:, -1], true[:, -1].roll(4, 0)) and torch.equal(other[:, :-1], true[:, :-1])
    samples, acts = target_samples(z, actions, 2)
    assert samples.shape == (2 * 4, 3, 2, 3)
    assert torch.equal(samples[1], z[0, 1:4]) and torch.equal(acts[4], actions[1, 0:3])   # frame t with t-2, t-1


def test_a_window_too_short_for_the_context_is_refused():
    z, actions = windows(w=4)
    with pytest.raises(ValueError, match="context 4 of 4"):
        one_step_figures(StandIn(uses_action=False), z, actions, context=4)
