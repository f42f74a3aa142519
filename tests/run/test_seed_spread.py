"""The spread across seeds: per-run values, sample mean and deviation, derived margins, per-run checks, runs
that lack a phase, and clear errors for runs that cannot be compared. (That it reads every figure of a real
quality.json is checked in tests/test_evaluate.py, on one that `python -m system.evaluate` wrote.)"""

import json
import math

import pytest

from system.run.seed_spread import main, markdown, seed_spread


def quality(seed: int, tokenizer: float, open8: float, copy8: float, scores: tuple | None) -> dict:
    """A quality.json as system/evaluate.py writes it, with its yes/no flags computed as it computes them."""
    out = {"run_dir": f"runs/c-{seed}", "config": "crafter-cpu", "training_seed": seed,
           "tokenizer": {"held_out_psnr_db": tokenizer, "retrieval": 0.8, "meets_target": tokenizer >= 30.0},
           "dynamics": {"horizon": 16, "open_loop_psnr_db_8": open8, "copy_last_psnr_db_8": copy8,
                        "open_loop_psnr_db_16": open8 - 1, "copy_last_psnr_db_16": copy8 - 1.5,
                        "beats_copy_last_8": open8 > copy8, "beats_copy_last_16": open8 - 1 > copy8 - 1.5,
                        "open_loop_latent_mse": 0.3, "copy_last_latent_mse": 0.2, "action_gap_db": 0.1,
                        "k_gap_db": 0.4, "k_within_target": True},
           "agent": None}
    if scores is not None:
        out["agent"] = {name: {"score": s, "mean_return": s / 2}
                        for name, s in zip(("random", "bc", "imagination"), scores)}
        out["agent"]["ordered_as_targeted"] = scores[2] > scores[1] > scores[0]
    return out


def test_every_figure_has_its_runs_values_mean_and_sample_deviation():
    runs = [quality(0, 26.0, 17.0, 17.5, (1.0, 2.0, 3.0)), quality(1, 27.0, 18.0, 17.0, (1.5, 2.5, 2.0)),
            quality(2, 28.0, 16.0, 16.0, (1.0, 3.0, 4.0))]
    spread = seed_spread(runs)
    tokenizer = spread["figures"]["tokenizer held-out PSNR (dB)"]
    assert tokenizer["values"] == [26.0, 27.0, 28.0] and tokenizer["mean"] == pytest.approx(27.0)
    assert tokenizer["std"] == pytest.approx(1.0) and (tokenizer["min"], tokenizer["max"]) == (26.0, 28.0)
    margin = spread["figures"]["open loop minus copy-last, 8 frames (dB)"]
    assert margin["values"] == pytest.approx([-0.5, 1.0, 0.0])
    assert spread["figures"]["open loop minus copy-last, whole horizon (dB)"]["values"] == pytest.approx([0, 1.5, 0.5])
    assert spread["figures"]["open loop latent MSE / copy-last"]["mean"] == pytest.approx(1.5)
    assert spread["figures"]["live score, phase-3 (%)"]["std"] == pytest.approx(1.0)
    assert spread["figures"]["live return, phase-2 BC"]["values"] == [1.0, 1.25, 1.5]
    assert [r["training_seed"] for r in spread["runs"]] == [0, 1, 2]


def test_checks_count_the_runs_that_meet_them():
    runs = [quality(0, 31.0, 17.0, 17.5, (1.0, 2.0, 3.0)), quality(1, 27.0, 18.0, 17.0, (1.5, 2.5, 2.0)),
            quality(2, 28.0, 16.0, 16.0, (1.0, 3.0, 4.0))]
    checks = seed_spread(runs)["checks"]
    assert checks["live score: phase 3 > phase 2 > random"] == {"met": 2, "of": 3}
    assert checks["live score: phase 3 > phase 2"] == {"met": 2, "of": 3}
    assert checks["live score: phase 2 > random"] == {"met": 3, "of": 3}
    assert checks["open loop beats copy-last, 8 frames"] == {"met": 1, "of": 3}  # a tie does not beat it
    assert checks["open loop beats copy-last, whole horizon"] == {"met": 2, "of": 3}
    assert checks["tokenizer >= 30 dB"] == {"met": 1, "of": 3}
    assert checks["K gap within 1 dB"] == {"met": 3, "of": 3}


def test_a_run_without_a_phase_leaves_a_gap_not_a_zero():
    runs = [quality(0, 26.0, 17.0, 17.5, (1.0, 2.0, 3.0)), quality(1, 27.0, 18.0, 17.0, None)]
    spread = seed_spread(runs)
    score = spread["figures"]["live score, phase-3 (%)"]
    assert score["values"] == [3.0, None] and score["n"] == 1 and score["mean"] == 3.0 and score["std"] == 0.0
    assert spread["checks"]["live score: phase 3 > phase 2 > random"] == {"met": 1, "of": 1}
    table = markdown(spread)
    assert "| live score, phase-3 (%) | 3.00 | - | 3.00 +- 0.00 (n = 1) |" in table
    assert table.splitlines()[0] == "| figure (crafter-cpu) | seed 0 | seed 1 | mean +- std |"


def test_runs_of_different_configs_are_refused_naming_them():
    other = quality(1, 27.0, 18.0, 17.0, None) | {"config": "smoke"}
    with pytest.raises(ValueError, match="runs/c-0: crafter-cpu, runs/c-1: smoke"):
        seed_spread([quality(0, 26.0, 17.0, 17.5, None), other])
    with pytest.raises(ValueError, match="no runs"):
        seed_spread([])


def test_the_command_reads_each_runs_quality_json_and_writes_the_spread(tmp_path, capsys):
    dirs = []
    for seed, psnr in ((0, 26.0), (1, 28.0)):
        run_dir = tmp_path / f"run{seed}"
        run_dir.mkdir()
        (run_dir / "quality.json").write_text(json.dumps(quality(seed, psnr, 17.0, 16.0, (1.0, 2.0, 3.0))))
        dirs.append(str(run_dir))
    out = tmp_path / "spread" / "spread.json"
    assert main(dirs + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"| tokenizer held-out PSNR (dB) | 26.00 | 28.00 | 27.00 +- {math.sqrt(2):.2f} |" in printed
    assert "- live score: phase 3 > phase 2 > random: 2 of 2 runs" in printed
    assert json.loads(out.read_text())["figures"]["tokenizer held-out PSNR (dB)"]["values"] == [26.0, 28.0]
    missing = tmp_path / "never-evaluated"
    missing.mkdir()
    assert main(dirs + [str(missing)]) == 1
    assert f"{missing / 'quality.json'}: no quality.json" in capsys.readouterr().err
    (missing / "quality.json").write_text("{not json")
    assert main([str(missing)]) == 1
    assert f"{missing / 'quality.json'}: not valid JSON" in capsys.readouterr().err
