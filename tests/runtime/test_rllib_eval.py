"""The RLlib evaluator on a real local Ray (tiny models, real Crafter): an EnvRunnerGroup acting through the
world-model service plays, with arg-max actions, the episodes play_episodes plays in the driver (same worlds, the
same frame and action at every step, same returns, lengths and achievements, same first-episode video) and writes
eval.json and the metrics line in the driver path's format."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import numpy as np
import ray
import torch

from actors.world_model_service import WorldModelServiceShell
from system.imagination.acting_service import ActingService
from system.phases.live_eval import run_live_evaluation
from system.run.config import load
from system.runtime import rllib_eval, service_eval
from tests.actors.test_service_policy_module import digest
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


def recording_service(path):
    """The world-model service actor, appending [episode noise seed, frame digest, action] per act to `path`
    (the actor lives in another process)."""
    class Recorder(WorldModelServiceShell):
        def __init__(self, spec):
            super().__init__(spec)
            self.seeds = {}

        async def open_episode(self, seed=None, owner=None):
            slot = await super().open_episode(seed, owner)
            self.seeds[slot] = seed
            return slot

        async def act(self, slot, obs, last_action, frame_index=None):
            action, version, frame = await super().act(slot, obs, last_action, frame_index)
            with open(path, "a") as log:
                log.write(json.dumps([self.seeds[slot], digest(obs), np.asarray(action).tolist()]) + "\n")
            return action, version, frame

    return ray.remote(num_cpus=0)(Recorder)


def recording_in_process(monkeypatch, steps: dict) -> None:
    """ActingService appending (frame digest, action) per act to steps[the episode's noise seed]."""
    open_episode, act = ActingService.open_episode, ActingService.act
    seeds = {}

    def open_and_record(self, seed=None, owner=None):
        slot = open_episode(self, seed, owner)
        seeds[slot] = seed
        return slot

    def act_and_record(self, requests):
        results = act(self, requests)
        for request, result in zip(requests, results):
            steps[seeds[request.slot]].append([digest(request.frame), result.action.tolist()])
        return results

    monkeypatch.setattr(ActingService, "open_episode", open_and_record)
    monkeypatch.setattr(ActingService, "act", act_and_record)


def test_the_rllib_evaluator_plays_the_drivers_episodes_into_the_same_eval_json(local_ray, tmp_path, monkeypatch):
    # 3 episodes on 2 envs: env 0 plays worlds 0 and 1 of its sequence, env 1 world 0; episodes of 8 steps at most
    cfg = tiny_config("eval.episodes=3", "eval.envs=2", "eval.max_steps=8", "eval.argmax=true",
                      "eval.video_frames=5")
    tokenizer, dynamics, heads = tiny_models(seed=0)
    for name in ("driver", "rllib"):
        (tmp_path / name).mkdir()
    in_process = defaultdict(list)
    recording_in_process(monkeypatch, in_process)
    driver = run_live_evaluation(cfg, tokenizer, dynamics, heads, 5, tmp_path / "driver", Log(),
                                 torch.device("cpu"))
    monkeypatch.setattr(service_eval, "WorldModelService", recording_service(str(tmp_path / "acts.jsonl")))
    log = Log()
    rllib = rllib_eval.evaluate_with_rllib(cfg, tokenizer, dynamics, heads, 5, tmp_path / "rllib", log)

    # every episode (named by its world's noise seed): the same frame and the same action at every step; the
    # runners also ask once on a finished episode's last frame before the autoreset (RLlib drops that action)
    served = defaultdict(list)
    for line in (tmp_path / "acts.jsonl").read_text().splitlines():
        seed, frame, action = json.loads(line)
        served[seed].append([frame, action])
    assert len(in_process) == 3 and set(served) == set(in_process)
    for seed, steps in in_process.items():
        assert served[seed][:len(steps)] == steps and len(served[seed]) - len(steps) in (0, 1), seed
    assert len({tuple(a) for steps in in_process.values() for _, a in steps}) > 1   # not one action everywhere

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
