"""The evaluation through the world-model service actor on a real local Ray plays the episodes the in-process
evaluation plays (arg-max actions, same seeds): the service in a loop of live episodes, end to end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from system.imagination.acting_service import ActingService
from system.phases.live_eval import run_live_evaluation
from system.run.config import load
from system.runtime import service_eval
from tests.helpers.acting import DYNAMICS, HEADS, TOKENIZER, tiny_models
from tests.phases.test_live_eval import Log
from tests.test_main import TINY


def recording(monkeypatch, cls, log: list) -> None:
    """Every act batch's actions, in order, appended to log."""
    act = cls.act

    def act_and_record(self, requests):
        results = act(self, requests)
        log.append([r.action.tolist() for r in results])
        return results

    monkeypatch.setattr(cls, "act", act_and_record)


def test_through_the_service_the_same_episodes_as_in_process(local_ray, tmp_path, monkeypatch):
    cfg = load(TINY + ["eval.episodes=3", "eval.envs=2", "eval.max_steps=6", "eval.argmax=true"])
    # the tiny acting models at seed 0: their arg-max actions change with the noise and the last action (a fresh
    # smoke-size head picks one action everywhere, and the comparison would be vacuous)
    tokenizer_section = dataclasses.replace(cfg.tokenizer, model=TOKENIZER,
                                            train=dataclasses.replace(cfg.tokenizer.train, seq_len=5))
    cfg = dataclasses.replace(cfg, tokenizer=tokenizer_section,
                              dynamics=dataclasses.replace(cfg.dynamics, model=DYNAMICS),
                              agent=dataclasses.replace(cfg.agent, heads=HEADS))
    tokenizer, dynamics, heads = tiny_models(seed=0)
    local_actions, remote_actions = [], []
    recording(monkeypatch, ActingService, local_actions)
    recording(monkeypatch, service_eval.RemoteService, remote_actions)
    for name in ("local", "ray"):
        (tmp_path / name).mkdir()
    local = run_live_evaluation(cfg, tokenizer, dynamics, heads, 5, tmp_path / "local", Log(), torch.device("cpu"))
    log = Log()
    remote = service_eval.evaluate_through_service(cfg, tokenizer, dynamics, heads, 5, tmp_path / "ray", log)
    assert remote_actions == local_actions and len(local_actions) == 12  # 3 episodes x 6 steps, 2 at a time
    assert len(np.unique(np.concatenate(local_actions))) > 1  # the comparison is not vacuous
    assert remote["policy_version"] == 5 and log.lines[0][0] == "eval"
    for key in ("episodes", "returns", "lengths", "success_rates", "score"):
        assert remote[key] == local[key], key
    assert json.loads((tmp_path / "ray" / "eval.json").read_text()) == remote
