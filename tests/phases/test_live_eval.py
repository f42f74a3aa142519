"""Live evaluation on real Crafter with a tiny policy: episode bookkeeping, eval.json, the metrics line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from system.envs.crafter_env import CrafterEnv
from system.envs.crafter_score import CRAFTER_ACHIEVEMENTS
from system.imagination.acting_service import ActingService
from system.phases.live_eval import play_episodes, run_live_evaluation
from system.run.config import load
from system.run.typed_config import ConfigError
from tests.helpers.acting import GENERATION, tiny_models
from tests.helpers.dynamics import one_thread  # noqa: F401


class Log:
    def __init__(self):
        self.lines = []

    def write(self, phase, step, scalars):
        self.lines.append((phase, step, scalars))


def test_more_episodes_than_envs_each_episode_counted_once_and_capped_at_max_steps():
    tokenizer, dynamics, heads = tiny_models()
    service = ActingService(tokenizer, dynamics, heads.policy, GENERATION, slots=2)
    summary = play_episodes(service, lambda k: CrafterEnv(seed=50 + k, max_episode_steps=6), episodes=3, envs=2)
    assert summary["episodes"] == 3 and len(summary["returns"]) == 3
    assert service.live_episodes() == 0 and service.episodes == 3  # every episode had a slot, then freed it
    assert all(1 <= n <= 6 for n in summary["lengths"])
    assert summary["std_return"] == pytest.approx(float(np.std(summary["returns"])))
    assert set(summary["success_rates"]) == set(CRAFTER_ACHIEVEMENTS)


def test_run_live_evaluation_writes_eval_json_and_a_metrics_line(tmp_path):
    cfg = load(["--config", "configs/smoke.yaml", "eval.episodes=2", "eval.envs=2", "eval.max_steps=5"])
    tokenizer, dynamics, heads = tiny_models()
    log = Log()
    summary = run_live_evaluation(cfg, tokenizer, dynamics, heads, 7, tmp_path, log, torch.device("cpu"))
    written = json.loads((tmp_path / "eval.json").read_text())
    assert written == summary
    assert written["episodes"] == 2 and written["policy_version"] == 7 and written["lengths"] == [5, 5]
    assert {"mean_return", "std_return", "score", "success_rates", "returns", "argmax", "max_steps"} <= set(written)
    [(phase, step, scalars)] = log.lines
    assert phase == "eval" and step == 7 and scalars["episodes"] == 2 and "success_collect_wood" in scalars
    assert scalars["policy_version"] == 7
    # the same worlds and seeds again: the same episodes
    again = run_live_evaluation(cfg, tokenizer, dynamics, heads, 7, tmp_path, log, torch.device("cpu"))
    assert again["returns"] == summary["returns"]
    cfg = load(["--config", "configs/smoke.yaml", "eval.episodes=0"])
    assert run_live_evaluation(cfg, tokenizer, dynamics, heads, 7, tmp_path / "none", log, None) is None


def test_bad_eval_settings_name_the_key():
    with pytest.raises(ConfigError, match="eval.max_steps"):
        load(["--config", "configs/smoke.yaml", "eval.max_steps=0"])
