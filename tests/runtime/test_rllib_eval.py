"""The RLlib evaluator on a real local Ray (tiny models, real Crafter): an EnvRunnerGroup acting through the
world-model service plays, with arg-max actions, the episodes play_episodes plays in the driver (same worlds, same
returns, lengths and achievements, same first-episode video) and writes eval.json and the metrics line in the
driver path's format."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from system.phases.live_eval import run_live_evaluation
from system.run.config import load
from system.runtime import rllib_eval
from tests.helpers.acting import DYNAMICS, HEADS, TOKENIZER, tiny_models
from tests.phases.test_live_eval import Log
from tests.test_main import TINY


def tiny_config(*overrides):
    """TINY with the tiny acting models at seed 0: their arg-max actions change with the frame, the noise and the
    last action (a fresh smoke-size head picks one action everywhere, and a comparison would be vacuous)."""
    cfg = load(TINY + list(overrides))
    tokenizer_section = dataclasses.replace(cfg.tokenizer, model=TOKENIZER,
                                            train=dataclasses.replace(cfg.tokenizer.train, seq_len=5))
    return dataclasses.replace(cfg, tokenizer=tokenizer_section,
                               dynamics=dataclasses.replace(cfg.dynamics, model=DYNAMICS),
                               agent=dataclasses.replace(cfg.agent, heads=HEADS))


def test_the_rllib_evaluator_plays_the_drivers_episodes_into_the_same_eval_json(local_ray, tmp_path):
    # 3 episodes on 2 envs: env 0 plays worlds 0 and 1 of its sequence, env 1 world 0; episodes of 8 steps at most
    cfg = tiny_config("eval.episodes=3", "eval.envs=2", "eval.max_steps=8", "eval.argmax=true",
                      "eval.video_frames=5")
    tokenizer, dynamics, heads = tiny_models(seed=0)
    for name in ("driver", "rllib"):
        (tmp_path / name).mkdir()
    driver = run_live_evaluation(cfg, tokenizer, dynamics, heads, 5, tmp_path / "driver", Log(),
                                 torch.device("cpu"))
    log = Log()
    rllib = rllib_eval.evaluate_with_rllib(cfg, tokenizer, dynamics, heads, 5, tmp_path / "rllib", log)
    for key in ("episodes", "returns", "lengths", "success_rates", "score", "mean_return", "std_return",
                "policy_version"):
        assert rllib[key] == driver[key], key
    assert rllib["episodes"] == 3 and rllib["policy_version"] == 5
    written = json.loads((tmp_path / "rllib" / "eval.json").read_text())
    assert written == rllib and set(written) == set(json.loads((tmp_path / "driver" / "eval.json").read_text()))
    (phase, step, scalars), (_, _, video) = log.lines
    assert phase == "eval" and step == 5 and scalars["episodes"] == 3 and "success_collect_wood" in scalars
    assert video == tmp_path / "rllib" / "videos" / "eval_policy_v5.mp4" and video.stat().st_size > 0
    assert video.read_bytes() == (tmp_path / "driver" / "videos" / "eval_policy_v5.mp4").read_bytes()
