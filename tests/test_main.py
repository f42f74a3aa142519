"""The main job end to end on a tiny config: the run-directory contract, and resuming a finished run."""

import json
import shutil

import torch

from system.main import main, run
from system.run.config import Config, load
from system.run.typed_config import load_config

TINY = ["--config", "configs/smoke.yaml", "replay.backend=embedded", "logging.wandb=disabled",
        "logging.log_every=2", "data.collect.episodes=2", "data.collect.max_episode_steps=20",
        "tokenizer.train.steps=4", "tokenizer.train.batch_size=2", "tokenizer.train.seq_len=3",
        "tokenizer.checkpoint_every=2", "dynamics.train.steps=4", "dynamics.checkpoint_every=2",
        "dynamics.model.transformer.context=4", "dynamics.train.schedule.batch_size=2",
        "dynamics.train.schedule.short_length=4", "dynamics.train.schedule.long_length=6",
        "dynamics.eval_context=2", "dynamics.eval_horizon=3",
        "agent.train.steps=2", "agent.checkpoint_every=2", "agent.train.batch_size=2", "agent.train.seq_len=4",
        "agent.heads.hidden=16", "agent.heads.mtp=2", "agent.heads.bins=31",
        "imagination.train.steps=2", "imagination.train.batch_size=2", "imagination.train.context=2",
        "imagination.train.horizon=3", "imagination.eval_contexts=2",
        "eval.episodes=2", "eval.envs=2", "eval.max_steps=10"]


CONTRACT = TINY + ["eval.every=1", "eval.periodic_episodes=1"]


def test_main_job_leaves_the_run_directory_contract(tiny_finished_run):   # a CONTRACT run (tests/conftest.py)
    run_dir = tiny_finished_run
    cfg = load(CONTRACT + [f"run_dir={run_dir}"])
    # config.yaml is the resolved config and reloads to the same object
    assert load_config(Config, run_dir / "config.yaml") == cfg
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["phase"] == "tokenizer"] == [2, 4]
    assert all({"phase", "step", "time"} <= set(r) for r in records)
    assert any(r["phase"] == "tokenizer_eval" and "held_out_psnr" in r for r in records)
    state = torch.load(run_dir / "checkpoints" / "tokenizer.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["num_latents"] == cfg.tokenizer.model.num_latents
    assert (run_dir / "videos" / "tokenizer_reconstructions.png").stat().st_size > 0
    assert [r["step"] for r in records if r["phase"] == "dynamics"] == [2, 4]
    evaluation = [r for r in records if r["phase"] == "dynamics_eval"]
    assert len(evaluation) == 1 and {"open_loop_psnr", "copy_last_psnr"} <= set(evaluation[0])
    state = torch.load(run_dir / "checkpoints" / "dynamics.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["packed_tokens"] == cfg.dynamics.model.packed_tokens
    for name in ("dynamics_open_loop.png", "dynamics_open_loop.mp4"):
        assert (run_dir / "videos" / name).stat().st_size > 0
    assert [r["step"] for r in records if r["phase"] == "agent"] == [2]
    assert any(r["phase"] == "agent_eval" and "held_out_next_action_accuracy" in r for r in records)
    state = torch.load(run_dir / "checkpoints" / "agent.pt", weights_only=True)
    assert state["step"] == 2 and {"model", "heads", "optimizer", "loss_norm"} <= set(state)
    assert [r["step"] for r in records if r["phase"] == "imagination"] == [2]
    evaluation = [r for r in records if r["phase"] == "imagination_eval"]
    assert len(evaluation) == 1 and {"imagined_return_policy", "imagined_return_prior", "kl_prior"} <= set(evaluation[0])
    state = torch.load(run_dir / "checkpoints" / "imagination.pt", weights_only=True)
    assert state["step"] == 2 and {"heads", "prior", "optimizer"} <= set(state)
    # the final evaluation: live Crafter episodes with the phase-3 policy
    summary = json.loads((run_dir / "eval.json").read_text())
    assert summary["episodes"] == 2 and len(summary["returns"]) == 2 and summary["policy_version"] == 2
    assert all(1 <= n <= 10 for n in summary["lengths"]) and 0.0 <= summary["score"] <= 100.0
    # live returns along the way (eval.every=1): policy version 1 played live; version 2 is the final evaluation
    assert [(r["step"], r["episodes"]) for r in records if r["phase"] == "live_eval"] == [(1, 1)]
    for name in ("live_eval_policy_v1.mp4", "eval_policy_v2.mp4"):  # each evaluation's first episode
        assert (run_dir / "videos" / name).stat().st_size > 0
    assert summary["mean_return"] == sum(summary["returns"]) / 2 and summary["std_return"] >= 0.0
    assert len(summary["success_rates"]) == 22 and all(0 <= r <= 100 for r in summary["success_rates"].values())
    [line] = [r for r in records if r["phase"] == "eval"]
    assert line["episodes"] == 2 and line["score"] == summary["score"]


def test_rerun_in_the_same_directory_resumes_instead_of_starting_over(tiny_finished_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_finished_run, run_dir)
    capsys.readouterr()
    before = torch.load(run_dir / "checkpoints" / "tokenizer.pt", weights_only=True)
    run(load(TINY + [f"run_dir={run_dir}", "tokenizer.train.steps=6", "dynamics.train.steps=6",
                     "agent.train.steps=3", "imagination.train.steps=3"]))
    out = capsys.readouterr().out
    assert "tokenizer: resumed from" in out and "dynamics: resumed from" in out and "at step 4" in out
    assert "agent: resumed from" in out and "imagination: resumed from" in out and "at step 2" in out
    after = torch.load(run_dir / "checkpoints" / "tokenizer.pt", weights_only=True)
    assert before["step"] == 4 and after["step"] == 6
    steps = [json.loads(l)["step"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["phase"] == "tokenizer"]
    assert steps == [2, 4, 6]
    assert torch.load(run_dir / "checkpoints" / "dynamics.pt", weights_only=True)["step"] == 6
    assert torch.load(run_dir / "checkpoints" / "agent.pt", weights_only=True)["step"] == 3
    assert torch.load(run_dir / "checkpoints" / "imagination.pt", weights_only=True)["step"] == 3


def test_bad_config_is_reported_with_the_key_and_exit_code_2(capsys):
    assert main(["--config", "configs/smoke.yaml", "tokenizer.model.patch_sise=4"]) == 2
    assert "tokenizer.model.patch_sise" in capsys.readouterr().err


def test_a_replay_store_failure_is_one_line_naming_the_server_not_a_traceback(tmp_path, capsys):
    from system.replay.server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(TINY + [f"run_dir={tmp_path / 'run'}", "replay.backend=redis", f"replay.url={url}"]) == 1
    err = capsys.readouterr().err
    assert f"replay store: cannot reach Redis at {url}" in err and "Traceback" not in err


def test_help_exits_0_and_lists_configs_overrides_and_keys(capsys):
    from system.main import main

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "smoke.yaml" in text and "dotted.key=value" in text and "runtime" in text and "tokenizer" in text


def test_resume_needs_a_run_directory_and_no_other_config(tmp_path, capsys):
    assert main(["--resume", str(tmp_path)]) == 2
    assert f"--resume {tmp_path}: no config.yaml there" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert main(["--resume", str(tmp_path), "--config", "configs/smoke.yaml"]) == 2
    assert "no --config" in capsys.readouterr().err


def test_imagination_workers_on_the_embedded_store_are_refused_before_any_work(tmp_path, capsys):
    assert main(TINY + [f"run_dir={tmp_path / 'run'}", "runtime.imagination_workers=1"]) == 1
    err = capsys.readouterr().err
    assert "needs a single-server Redis replay store, got EmbeddedStore" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints" / "tokenizer.pt").exists()


def test_full_finetuning_with_imagination_workers_is_a_config_error(tmp_path, capsys):
    # the workers would imagine with a stale copy of the dynamics that full finetuning changes
    assert main(TINY + [f"run_dir={tmp_path / 'run'}", "runtime.imagination_workers=1",
                        "imagination.train.full_finetune=true"]) == 2
    err = capsys.readouterr().err
    assert "imagination.train.full_finetune" in err and "runtime.imagination_workers" in err
    assert not (tmp_path / "run").exists()
