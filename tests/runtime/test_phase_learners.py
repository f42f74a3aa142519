"""Phases 1a, 1b, 2 and 3 on Ray learner actors (runtime.learners=2, gloo on CPU): they train from the run's
Redis, the driver evaluates the checkpoints they leave as it would its own, and a rerun loads them instead of
starting learners again. In phase 2 the online collection's service gets rank 0's weights versions; in phase 3
the driver's live evaluation plays rank 0's policy."""

import dataclasses
import json
import re

import pytest
import torch
from rich.console import Console

from system.envs.action_space import crafter_action_space
from system.main import collect_training_data, on_learners, run
from system.replay import make_store
from system.run.config import load
from system.run.metrics_log import MetricsLog
from system.run.typed_config import ConfigError
from system.run.weights_version import phase_version
from system.runtime.online_collection import OnlineCollection
from system.runtime.phase_learners import reserve_learner_placement, train_elsewhere
from tests.helpers.acting import tiny_models
from tests.runtime.test_online_collection import Log, tiny_config
from tests.test_main import TINY

pytestmark = pytest.mark.redis

# equal shares of 2: dynamics long batches of 2 (not 2 x 4 // 6 = 1), agent batches of 2 uniform + 2 relevant rows
ARGS = [a for a in TINY if a != "replay.backend=embedded"] + [
    "replay.backend=redis", "runtime.learners=2", "dynamics.train.schedule.long_batch_size=2",
    "agent.train.batch_size=4", "eval.episodes=1", "eval.envs=1", "eval.every=1", "eval.periodic_episodes=1"]


def test_two_learner_actors_train_phases_1_and_2_and_the_driver_evaluates_their_checkpoints(local_ray, tmp_path,
                                                                                            capsys):
    run_dir = tmp_path / "run"
    cfg = load([*ARGS, f"run_dir={run_dir}"])
    assert on_learners(load(TINY), None, None, "dynamics") is None  # runtime.learners = 0: the driver trains
    run(cfg, Console(file=open("/dev/null", "w")))
    out = " ".join(capsys.readouterr().out.split())
    for phase, share in (("tokenizer", "1 sequences each per step"), ("dynamics", "1/2 of each batch's sequences"),
                         ("agent", "1 uniform + 1 relevant sequences each per step"),
                         ("imagination", "1 start contexts each per step")):
        assert f"{phase}: 2 data-parallel learner actors (CPU, {share}), from step 0" in out
    assert "resumed" not in out
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for phase, steps, logged, model_key in (("tokenizer", 4, [2, 4], "num_latents"),
                                            ("dynamics", 4, [2, 4], "packed_tokens"), ("agent", 2, [2], "mtp"),
                                            ("imagination", 2, [2], "horizon")):
        state = torch.load(run_dir / "checkpoints" / f"{phase}.pt", weights_only=True)
        # the driver's format, trained by the group: one Adam update per step
        assert state["step"] == steps and model_key in state["config"]
        assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {float(steps)}
        rows = [r for r in lines if r["phase"] == phase]
        assert [r["step"] for r in rows] == logged and all(r["train_steps_per_s"] > 0 for r in rows)
        assert len([r for r in lines if r["phase"] == f"{phase}_eval"]) == 1  # the driver evaluated it, once
    # phase 3's live evaluation at step 1 (the driver's, with rank 0's policy of that step); step 2 is the final one
    assert [(r["step"], r["policy_version"]) for r in lines if r["phase"] == "live_eval"] == [(1, 1)]
    imagination = torch.load(run_dir / "checkpoints" / "imagination.pt", weights_only=True)
    agent = torch.load(run_dir / "checkpoints" / "agent.pt", weights_only=True)
    prior = {k[len("policy."):]: v for k, v in agent["heads"].items() if k.startswith("policy.")}
    assert all(torch.equal(imagination["prior"][k], v) for k, v in prior.items())   # the phase-2 policy, frozen
    # a rerun: every phase finished, loaded, no learner started, nothing redone
    run(cfg, Console(file=open("/dev/null", "w")))
    out = " ".join(capsys.readouterr().out.split())
    assert "learner actors" not in out
    assert all(f"{phase}: finished at step" in out for phase in ("tokenizer", "dynamics", "agent", "imagination"))


@pytest.mark.parametrize("key, override", [
    ("tokenizer.train.batch_size", "tokenizer.train.batch_size=3"),
    ("dynamics.train.schedule.long_batch_size (0: batch_size x short_length / long_length)",
     "dynamics.train.schedule.long_batch_size=0"),   # 2 x 4 // 6 = 1 sequence per long batch
    ("agent.train.batch_size x (1 - relevant_fraction) (the uniform rows)", "agent.train.batch_size=6")])
def test_a_batch_the_learners_cannot_share_equally_is_a_config_error(key, override):
    with pytest.raises(ConfigError, match=re.escape(f"{key} = ") + r"\d+ is not divisible by runtime.learners = 2"):
        load([*ARGS, override])


def test_phase_2_learners_send_their_weights_versions_to_the_service(local_ray, redis_server, tmp_path):
    cfg = tiny_config(redis_server, tmp_path, [
        "runtime.learners=2", "runtime.env_runners=1", "runtime.publish_every=2", "agent.train.steps=4",
        "agent.train.batch_size=4", "tokenizer.train.batch_size=2", "dynamics.train.schedule.long_batch_size=2",
        "data.collect.episodes=1", "data.collect.max_episode_steps=12"])
    store = make_store(cfg.replay)
    in_driver = dataclasses.replace(cfg.runtime, env_runners=0, online_steps_per_update=0)
    collect_training_data(dataclasses.replace(cfg, runtime=in_driver), store, Console(file=open("/dev/null", "w")))
    tokenizer, dynamics, _ = tiny_models(seed=0)
    log = Log()
    online = OnlineCollection(cfg, store, tokenizer, log, placement=reserve_learner_placement(cfg))
    path = tmp_path / "agent.pt"
    try:
        train = train_elsewhere(cfg, store, MetricsLog(tmp_path, console=None), "agent",
                                action_space=crafter_action_space(), tokenizer=tokenizer, dynamics=dynamics,
                                online=online)
        assert train(path) == 4
        # versions 1 (the start, with the tokenizer), 3 and 5 (publish_every 2): the last is the checkpoint's
        stats = local_ray.get(online.service.stats.remote())
        assert online.published() == phase_version(cfg, "agent", 4) == 5 and stats["version"] == 5
        assert online.updates == 4  # one per update: the runners' allowance grows as in the driver path
    finally:
        report = online.close()
        online.placement.remove()
        store.close()
    assert torch.load(path, weights_only=True)["step"] == 4
    assert report.env_steps <= 4 * cfg.runtime.online_steps_per_update + cfg.runtime.steps_per_call
