"""The RLlib evaluator on a real local Ray (tiny models, real Crafter): an EnvRunnerGroup acting through the
world-model service plays, with arg-max actions, the episodes play_episodes plays in the driver (same worlds, the
same frame and action at every step, same returns, lengths and achievements, same first-episode video) and writes
eval.json and the metrics line in the driver path's format."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
import ray
import torch

from actors.world_model_service import WorldModelServiceShell
from system.imagination.acting_service import ActingService, world_noise_seed
from system.phases.live_eval import eval_seed, run_live_evaluation
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
    and [owner, slots freed] per close_owned to `path`.owned (the actor lives in another process)."""
    class Recorder(WorldModelServiceShell):
        def __init__(self, spec):
            super().__init__(spec)
            self.seeds = {}

        async def open_episode(self, seed=None, owner=None):
            slot = await super().open_episode(seed, owner)
            self.seeds[slot] = seed
            return slot

        async def close_owned(self, owner):
            freed = await super().close_owned(owner)
            with open(path + ".owned", "a") as log:
                log.write(json.dumps([owner, freed]) + "\n")
            return freed

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


def kill_runner_when_it_has_acted(acts_path, pids: dict, runner: int, world_seed: int, after: int) -> threading.Thread:
    """A thread that SIGKILLs env runner `runner`'s process once the service has answered `after` acts of the
    episode with noise seed `world_seed` (its first world: it is playing, not done)."""
    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = acts_path.read_text().splitlines() if acts_path.exists() else []
            if sum(json.loads(line)[0] == world_seed for line in lines) >= after and runner in pids:
                os.kill(pids[runner], signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def runner_pids(monkeypatch) -> dict:
    """{worker_index: pid} of the eval env runners of the next evaluation, filled as the group comes up."""
    pids, make_group = {}, rllib_eval.eval_runner_group

    def make_and_note_pids(spec, max_restarts):
        group = make_group(spec, max_restarts)
        pids.update(group.foreach_env_runner(lambda runner: (runner.worker_index, os.getpid()),
                                             local_env_runner=False))
        return group

    monkeypatch.setattr(rllib_eval, "eval_runner_group", make_and_note_pids)
    return pids


def test_the_rllib_evaluator_plays_the_drivers_episodes_into_the_same_eval_json_through_a_runner_loss(
        local_ray, tmp_path, monkeypatch, capsys):
    # 3 episodes on 2 envs: env 0 plays worlds 0 and 1 of its sequence, env 1 world 0; episodes of 12 steps at
    # most. Runner 2's process is killed after 3 steps of its world: Ray restarts it, it frees the slot its first
    # life held and plays the world again from its first frame, so eval.json is the undisturbed one
    cfg = tiny_config("eval.episodes=3", "eval.envs=2", "eval.max_steps=12", "eval.argmax=true",
                      "eval.video_frames=5")
    tokenizer, dynamics, heads = tiny_models(seed=0)
    for name in ("driver", "rllib"):
        (tmp_path / name).mkdir()
    in_process = defaultdict(list)
    recording_in_process(monkeypatch, in_process)
    driver = run_live_evaluation(cfg, tokenizer, dynamics, heads, 5, tmp_path / "driver", Log(),
                                 torch.device("cpu"))
    acts = tmp_path / "acts.jsonl"
    monkeypatch.setattr(service_eval, "WorldModelService", recording_service(str(acts)))
    runner_2_world = world_noise_seed({"seed": eval_seed(cfg.seed) + 1, "index": 0})
    killer = kill_runner_when_it_has_acted(acts, runner_pids(monkeypatch), 2, runner_2_world, after=3)
    log = Log()
    rllib = rllib_eval.evaluate_with_rllib(cfg, tokenizer, dynamics, heads, 5, tmp_path / "rllib", log)
    killer.join(timeout=1)
    assert "1 runner restarts" in capsys.readouterr().out
    # each runner's module frees its owner's slots as it starts: nothing the first time, the dead life's slot
    # (the episode it was playing) when runner 2 comes back
    owned = [json.loads(line) for line in (tmp_path / "acts.jsonl.owned").read_text().splitlines()]
    assert sorted(owned) == [["eval1", 0], ["eval2", 0], ["eval2", 1]], owned

    # every episode (named by its world's noise seed): the same frame and the same action at every step; the
    # runners also ask once on a finished episode's last frame before the autoreset (RLlib drops that action)
    served = defaultdict(list)
    for line in acts.read_text().splitlines():
        seed, frame, action = json.loads(line)
        served[seed].append([frame, action])
    assert len(in_process) == 3 and set(served) == set(in_process)
    # runner 2's world: the first life's steps (at least 3), then the whole episode again from its first frame
    episode = in_process[runner_2_world]
    first_life = len(served[runner_2_world]) - len(episode) - (served[runner_2_world][-1:] != episode[-1:])
    assert first_life >= 3 and served[runner_2_world][:first_life] == episode[:first_life], first_life
    served[runner_2_world] = served[runner_2_world][first_life:]
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


class FlakyGroup:
    """An EnvRunnerGroup stand-in for QuotaPlay: runner `lost` dies in its first `deaths` calls (its request
    fails, which takes it out of service) and is healthy again after `restore_probes` probes."""

    def __init__(self, runners: int, lost: int, deaths: int, restore_probes: int = 1):
        self.runners, self.lost, self.deaths, self.restore_probes = runners, lost, deaths, restore_probes
        self.calls, self.probes, self.healthy, self.ready = [], 0, set(range(1, runners + 1)), []

    def foreach_env_runner_async(self, play, tag, remote_worker_ids):
        self.calls.append(list(remote_worker_ids))
        for runner in remote_worker_ids:
            dies = runner == self.lost and self.deaths > 0
            self.deaths -= dies
            self.ready.append((runner, None if dies else {"runner": runner, "life": len(self.calls)}))

    def fetch_ready_async_reqs(self, tags, timeout_seconds):
        ready, self.ready = self.ready, []
        for runner, result in ready:
            if result is None:   # RLlib drops a failed request's result and takes the runner out of service
                self.healthy.discard(runner)
                self.probes = 0
        return [(runner, result) for runner, result in ready if result is not None]

    def healthy_env_runner_ids(self):
        return sorted(self.healthy)

    def probe_unhealthy_env_runners(self, timeout_seconds):
        self.probes += 1
        if self.probes >= self.restore_probes:
            self.healthy.add(self.lost)


def test_play_quotas_replays_only_the_lost_runner_and_gives_up_past_max_restarts(monkeypatch):
    monkeypatch.setattr(rllib_eval, "play_quota", lambda runner, **_: None)
    group = FlakyGroup(runners=3, lost=2, deaths=2, restore_probes=2)
    results = rllib_eval.play_quotas(group, [1, 1, 1], 0, max_restarts=2)
    assert [r["runner"] for r in results] == [1, 2, 3]       # in runner order
    assert group.calls == [[1, 2, 3], [2], [2]] and results[1]["life"] == 3

    with pytest.raises(RuntimeError, match=r"eval env runners \[2\] were lost; 2 losses in all exceed "
                                           r"eval.max_runner_restarts = 1"):
        rllib_eval.play_quotas(FlakyGroup(runners=3, lost=2, deaths=2), [1, 1, 1], 0, max_restarts=1)
    with pytest.raises(RuntimeError, match=r"eval env runners \[2\] were lost and not restarted within 0 s"):
        rllib_eval.play_quotas(FlakyGroup(runners=3, lost=2, deaths=1, restore_probes=10**9), [1, 1, 1], 0,
                               max_restarts=3, restore_timeout_s=0.0)


def served_acts(path) -> dict:
    """{episode noise seed: [[frame digest, action], ...]} of a recording service's log; the log is then removed."""
    served = defaultdict(list)
    for line in path.read_text().splitlines():
        seed, frame, action = json.loads(line)
        served[seed].append([frame, action])
    path.unlink()
    return served


def test_periodic_rllib_evaluations_play_beside_training_the_drivers_live_evals_with_each_versions_policy(
        local_ray, tmp_path, monkeypatch):
    # two evaluations of 3 episodes on 2 kept runners, the policy head changed in between: each call returns
    # while its episodes play (one due meanwhile is skipped), and each plays the worlds the driver's live_eval
    # plays, with that version's policy (the service takes the new weights)
    cfg = tiny_config("eval.periodic_episodes=3", "eval.envs=2", "eval.max_steps=8", "eval.argmax=true",
                      "eval.video_frames=3", "eval.every=1")
    tokenizer, dynamics, heads = tiny_models(seed=0)
    for name in ("driver", "rllib"):
        (tmp_path / name).mkdir()
    in_process = defaultdict(list)
    recording_in_process(monkeypatch, in_process)
    acts = tmp_path / "acts.jsonl"
    monkeypatch.setattr(service_eval, "WorldModelService", recording_service(str(acts)))
    driver_log, rllib_log, driven, served = Log(), Log(), [], []
    evaluator = rllib_eval.PeriodicRllibEvaluator(cfg, tokenizer, dynamics, heads, tmp_path / "rllib", rllib_log)
    try:
        for version in (1, 2):
            if version == 2:
                torch.manual_seed(7)
                with torch.no_grad():
                    for p in heads.policy.parameters():
                        p.add_(torch.randn_like(p) * 0.5)
            driver = run_live_evaluation(cfg, tokenizer, dynamics, heads, version, tmp_path / "driver", driver_log,
                                         torch.device("cpu"), episodes=3, phase="live_eval")
            driven.append(dict(in_process))
            in_process.clear()
            assert evaluator(version)                      # started: returns while the episodes play
            assert evaluator.poll() is None and len(rllib_log.lines) == 2 * (version - 1)
            assert not evaluator(version + 10)            # still playing: skipped, nothing sent to the service
            rllib = evaluator.finish()
            served.append(served_acts(acts))
            for key in ("episodes", "returns", "lengths", "success_rates", "score", "policy_version"):
                assert rllib[key] == driver[key], (version, key)
            assert rllib["policy_version"] == version
        assert evaluator.finish() is None
    finally:
        evaluator.close()
    for version in (0, 1):
        assert set(served[version]) == set(driven[version]) and len(driven[version]) == 3
        for seed, steps in driven[version].items():
            assert served[version][seed][:len(steps)] == steps, (version, seed)
    # the same worlds both times, and the new policy acted differently in them
    assert set(driven[0]) == set(driven[1]) and driven[0] != driven[1]
    assert [line[:2] for line in rllib_log.lines] == [line[:2] for line in driver_log.lines] == \
        [("live_eval", 1), ("live_eval", 1), ("live_eval", 2), ("live_eval", 2)]
    assert not (tmp_path / "rllib" / "eval.json").exists()
    assert (tmp_path / "rllib" / "videos" / "live_eval_policy_v2.mp4").read_bytes() == \
        (tmp_path / "driver" / "videos" / "live_eval_policy_v2.mp4").read_bytes()
