"""Live evaluation on real Crafter with a tiny policy: episode bookkeeping, eval.json, the metrics line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from system.envs.crafter_env import CrafterEnv
from system.envs.crafter_score import CRAFTER_ACHIEVEMENTS
from system.imagination.acting_service import ActingService, ActRequest, world_noise_seed
from system.phases.live_eval import play_episodes, quota, run_live_evaluation
from system.run.config import load
from system.run.typed_config import ConfigError
from tests.helpers.acting import GENERATION, tiny_models
from tests.helpers.dynamics import one_thread  # noqa: F401


class Log:
    def __init__(self):
        self.lines = []

    def write(self, phase, step, scalars):
        self.lines.append((phase, step, scalars))

    def media(self, phase, step, name, path):
        self.lines.append((phase, step, path))


class SeedRecorder(ActingService):
    def open_episode(self, seed=None, owner=None):
        self.seeds = getattr(self, "seeds", []) + [seed]
        return super().open_episode(seed, owner)


def test_more_episodes_than_envs_each_episode_counted_once_and_capped_at_max_steps():
    tokenizer, dynamics, heads = tiny_models()
    service = SeedRecorder(tokenizer, dynamics, heads.policy, GENERATION, slots=2)
    summary = play_episodes(service, lambda k: CrafterEnv(seed=50 + k, max_episode_steps=6), episodes=3, envs=2)
    assert summary["episodes"] == 3 and len(summary["returns"]) == 3
    assert service.live_episodes() == 0 and service.episodes == 3  # every episode had a slot, then freed it
    # episode i is env i % 2's (i // 2)-th world: env 0 plays worlds 0 and 1 of its sequence, env 1 world 0, each
    # with its world's noise seed
    assert sorted(service.seeds) == sorted(world_noise_seed({"seed": s, "index": j})
                                           for s, j in ((50, 0), (51, 0), (50, 1)))
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
    (phase, step, scalars), (_, _, video) = log.lines
    assert phase == "eval" and step == 7 and scalars["episodes"] == 2 and "success_collect_wood" in scalars
    assert scalars["policy_version"] == 7
    assert video == tmp_path / "videos" / "eval_policy_v7.mp4" and video.stat().st_size > 0
    # the same worlds and seeds again: the same episodes
    again = run_live_evaluation(cfg, tokenizer, dynamics, heads, 7, tmp_path, log, torch.device("cpu"))
    assert again["returns"] == summary["returns"]
    cfg = load(["--config", "configs/smoke.yaml", "eval.episodes=0"])
    assert run_live_evaluation(cfg, tokenizer, dynamics, heads, 7, tmp_path / "none", log, None) is None


def test_the_video_is_the_first_episode_from_its_reset_frame_in_order():
    tokenizer, dynamics, heads = tiny_models()
    service = ActingService(tokenizer, dynamics, heads.policy, GENERATION, slots=2, argmax=True)
    video: list = []
    summary = play_episodes(service, lambda k: CrafterEnv(seed=60 + k, max_episode_steps=6), episodes=3, envs=2,
                            video=video, video_frames=100)
    # replay episode 0 (env 0's first episode) with the actions the policy chose: the same frames
    replay = ActingService(tokenizer, dynamics, heads.policy, GENERATION, slots=1, argmax=True)
    env = CrafterEnv(seed=60, max_episode_steps=6)
    frame, info = env.reset()
    expected, last, done = [frame], np.full(1, -1), False
    slot = replay.open_episode(seed=world_noise_seed(info["world"]))
    while not done:
        [result] = replay.act([ActRequest(slot, frame, last)])
        frame, _, terminated, truncated, _ = env.step(result.action)
        expected.append(frame)
        last, done = result.action, terminated or truncated
    assert len(video) == len(expected) <= 7 and all((a == b).all() for a, b in zip(video, expected))
    short: list = []
    play_episodes(service, lambda k: CrafterEnv(seed=60 + k, max_episode_steps=6), episodes=1, envs=1, video=short,
                  video_frames=3)
    assert len(short) == 3 and (short[0] == expected[0]).all()
    assert summary["episodes"] == 3


def test_episode_i_goes_to_env_i_mod_envs():
    assert [quota(k, 5, 2) for k in range(2)] == [3, 2]
    assert [quota(k, 3, 4) for k in range(4)] == [1, 1, 1, 0]
    assert sum(quota(k, 20, 3) for k in range(3)) == 20


def test_bad_eval_settings_name_the_key():
    with pytest.raises(ConfigError, match="eval.max_steps"):
        load(["--config", "configs/smoke.yaml", "eval.max_steps=0"])
