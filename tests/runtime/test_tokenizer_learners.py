"""The tokenizer phase on Ray learner actors (runtime.learners=2, gloo on CPU): they train it from the run's
Redis, the driver evaluates the checkpoint they leave as it would its own, and a rerun loads it instead of
starting learners again."""

import json

import pytest
import torch
from rich.console import Console

from system.main import collect_training_data, held_out_clips, tokenizer_learners
from system.phases.train_tokenizer import run_tokenizer_phase
from system.replay import make_store
from system.run.config import load
from system.run.metrics_log import MetricsLog
from system.run.typed_config import ConfigError
from tests.test_main import TINY

pytestmark = pytest.mark.redis

ARGS = [a for a in TINY if a != "replay.backend=embedded"] + [
    "replay.backend=redis", "runtime.learners=2", "runtime.num_cpus=2"]


def test_two_learner_actors_train_the_tokenizer_and_the_driver_evaluates_their_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = load([*ARGS, f"run_dir={run_dir}"])
    assert tokenizer_learners(load(TINY), None, None) is None  # runtime.learners = 0: the driver trains
    log = MetricsLog(run_dir, console=None)
    with make_store(cfg.replay, run_dir, seed=cfg.seed) as store:
        collect_training_data(cfg, store, Console(file=open("/dev/null", "w")))
        held_out = held_out_clips(cfg, store, episodes=2, frames=4)[0]
        for attempt in range(2):  # the run, then a rerun in the same directory
            run_tokenizer_phase(cfg, store, held_out, run_dir, log, torch.device("cpu"),
                                train_elsewhere=tokenizer_learners(cfg, store, log))
            out = " ".join(capsys.readouterr().out.split())
            if attempt == 0:
                assert "tokenizer: 2 data-parallel learner actors (CPU, 1 sequences each per step), from step 0" in out
                assert "resumed" not in out
                state = torch.load(run_dir / "checkpoints" / "tokenizer.pt", weights_only=True)
            else:  # finished: loaded, no learner started, nothing redone
                assert "tokenizer: finished at step 4" in out and "learner actors" not in out
    log.close()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    tokenizer = [r for r in lines if r["phase"] == "tokenizer"]
    assert [r["step"] for r in tokenizer] == [2, 4] and all(r["train_steps_per_s"] > 0 for r in tokenizer)
    assert len([r for r in lines if r["phase"] == "tokenizer_eval"]) == 1
    assert state["step"] == 4 and state["config"]["num_latents"] == cfg.tokenizer.model.num_latents
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {4.0}  # four updates, by the group
    assert (run_dir / "videos" / "tokenizer_reconstructions.png").stat().st_size > 0


def test_a_batch_the_learners_cannot_share_equally_is_a_config_error():
    with pytest.raises(ConfigError, match="runtime.learners = 3"):
        load([*ARGS, "runtime.learners=3"])
