"""`python -m system.evaluate RUN_DIR` on a tiny finished run: quality.json with every section, the pictures,
figures that agree with the baselines recomputed here, and clear errors for what is not a finished run."""

import json
import shutil

import numpy as np
import pytest
import torch

from system.evaluate import UniformPolicy, evaluate_run, held_out_windows, main
from system.imagination.open_loop import pixel_mse_per_step, psnr_db
from system.run.config import load
from system.run.seed_spread import CHECKS, FIGURES, seed_spread


@pytest.fixture(scope="module")
def finished_run(tiny_finished_run, tmp_path_factory):
    """A copy of the session's tiny finished run (tests/conftest.py): evaluation writes into it."""
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    shutil.copytree(tiny_finished_run, run_dir)
    return run_dir


def test_quality_json_holds_every_phase_and_its_baselines(finished_run, capsys):
    assert main([str(finished_run), "--episodes", "1", "--clips", "2"]) == 0
    quality = json.loads((finished_run / "quality.json").read_text())
    assert quality["tokenizer"]["held_out_psnr_db"] > 0 and quality["tokenizer"]["meets_target"] is False
    dynamics = quality["dynamics"]
    horizon = dynamics["horizon"]
    assert horizon == 3 and {f"open_loop_psnr_db_{horizon}", f"copy_last_psnr_db_{horizon}", "action_gap_db",
                             "k_gap_db", "open_loop_psnr_db_k64"} <= set(dynamics)
    assert "open_loop_psnr_db_8" not in dynamics  # a 3-frame horizon has no 8-frame figure
    one_step = dynamics["one_step"]
    assert one_step["samples"] == 2 * horizon and one_step["copy_mse"] >= 0
    assert {"mse_tau0", "mse_moving_tau0", "mse_moving_other_action_tau0", "mse_tau0.5"} <= set(one_step)
    # the copy-last baseline, recomputed from the same held-out windows (same seed: the same offsets)
    cfg = load(["--config", str(finished_run / "config.yaml")])
    frames, _ = held_out_windows(cfg, 2, cfg.dynamics.eval_context + horizon, seed=0)
    clips = torch.from_numpy(frames).float() / 255.0
    c = cfg.dynamics.eval_context
    held = clips[:, c - 1:c].expand_as(clips[:, c:])
    assert dynamics[f"copy_last_psnr_db_{horizon}"] == pytest.approx(
        float(psnr_db(pixel_mse_per_step(held, clips[:, c:]).mean())), abs=1e-4)
    agent = quality["agent"]
    for policy in ("random", "bc", "imagination"):
        assert agent[policy]["episodes"] == 1 and 0 <= agent[policy]["score"] <= 100, policy
    assert isinstance(agent["ordered_as_targeted"], bool)
    for name in ("quality_reconstructions.png", "quality_open_loop.png", "quality_open_loop.mp4",
                 "quality_open_loop.gif", "quality_curves.png"):
        assert (finished_run / "videos" / name).stat().st_size > 0, name


def test_the_seed_spread_reads_every_figure_of_a_real_quality_json(finished_run):
    """system/run/seed_spread.py reads quality.json by key: a renamed key here would leave its row empty."""
    if not (finished_run / "quality.json").exists():
        evaluate_run(finished_run, episodes=1, clips=2, say=lambda line: None)
    quality = json.loads((finished_run / "quality.json").read_text())
    assert quality["training_seed"] == load(["--config", str(finished_run / "config.yaml")]).seed
    spread = seed_spread([quality, quality])
    eight_frames = {name for name in FIGURES if "8 frames" in name}  # the tiny run's horizon is 3 frames
    assert {name for name, figure in spread["figures"].items() if figure["n"] == 2} == set(FIGURES) - eight_frames
    assert set(spread["checks"]) == {name for name in CHECKS if "8 frames" not in name}
    assert all(check["of"] == 2 for check in spread["checks"].values())


def test_held_out_windows_are_seeded_random_offsets_of_held_out_worlds(finished_run):
    cfg = load(["--config", str(finished_run / "config.yaml"), "data.collect.max_episode_steps=40"])
    a, _ = held_out_windows(cfg, 2, 6, seed=0)
    again, _ = held_out_windows(cfg, 2, 6, seed=0)
    other, _ = held_out_windows(cfg, 2, 6, seed=1)
    assert a.shape == (2, 6, 64, 64, 3) and (a == again).all() and not (a == other).all()


def test_the_random_baseline_draws_every_component_within_its_classes():
    policy = UniformPolicy((17,), seed=0)
    actions = np.stack([policy.act([None])[0].action for _ in range(400)])
    assert actions.shape == (400, 1) and actions.min() == 0 and actions.max() == 16


def test_what_is_not_a_finished_run_is_refused_naming_the_file(finished_run, tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "no config.yaml" in capsys.readouterr().err
    partial = tmp_path / "partial"
    shutil.copytree(finished_run, partial)
    (partial / "checkpoints" / "tokenizer.pt").unlink()
    assert main([str(partial)]) == 1
    assert f"{partial / 'checkpoints' / 'tokenizer.pt'}: no tokenizer checkpoint" in capsys.readouterr().err
    assert main([str(finished_run), "--clips", "1"]) == 2
