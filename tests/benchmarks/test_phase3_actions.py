"""benchmarks/phase3_actions.py on the tiny finished run: action shares that are distributions over Crafter's
actions, and the same noise and action draws for both policies (a phase-3 policy equal to its prior imagines
exactly the prior's rollouts; a far-off one acts otherwise, and the prior's rollouts stay the same)."""

import shutil

import pytest
import torch

from benchmarks.phase3_actions import imagined_behaviour
from system.training.checkpoint import load_checkpoint, save_checkpoint


def test_both_policies_see_the_same_draws_and_shares_are_distributions(tiny_finished_run, tmp_path):
    figures = imagined_behaviour(tiny_finished_run, contexts=2, horizon=3, seed=0)
    for name in ("phase3", "prior"):
        shares = figures[name]["action_shares"]
        assert len(shares) == 17 and sum(shares.values()) == pytest.approx(1.0), name
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_finished_run, run_dir)
    path = run_dir / "checkpoints" / "imagination.pt"
    state = load_checkpoint(path)
    state["heads"].update({f"policy.{key}": value for key, value in state["prior"].items()})
    save_checkpoint(path, state)
    same = imagined_behaviour(run_dir, contexts=2, horizon=3, seed=0)
    assert same["phase3"] == same["prior"]
    generator = torch.Generator().manual_seed(0)
    state["heads"].update({f"policy.{key}": value + 3 * torch.randn(value.shape, generator=generator)
                           for key, value in state["prior"].items() if value.is_floating_point()})
    save_checkpoint(path, state)
    moved = imagined_behaviour(run_dir, contexts=2, horizon=3, seed=0)
    assert moved["phase3"]["action_shares"] != moved["prior"]["action_shares"]
    assert moved["prior"] == same["prior"]   # the prior's rollouts do not depend on the other policy
