"""Env runners on a real local Ray writing to a real redis-server: collection survives a killed runner.

One test on purpose: starting runner actors (each imports RLlib) costs most of its time."""

from __future__ import annotations

import os
import signal

import pytest

from actors.crafter_env_runner import CrafterEnvRunner, EnvRunnerSpec
from system.replay import make_store
from system.runtime.collection import collect_env_steps
from tests.conftest import replay_config

pytestmark = pytest.mark.redis


def _runners(ray, cfg, count: int, envs: int = 2):
    return [CrafterEnvRunner.options(max_restarts=-1).remote(
        EnvRunnerSpec(index=k, envs=envs, max_episode_steps=40, seed=3), cfg) for k in range(count)]


def _check_acknowledged_chunks_are_stored(store, report, steps_per_call: int = 40, envs: int = 2):
    for episode_id, offset, steps in report.chunks:
        chunk = store.get_chunk("real", episode_id, offset)
        assert len(chunk.frames) == steps and chunk.frames.shape[1:] == (64, 64, 3)
    # a call lost to a kill may have stored its chunks before the kill (seen under load: 42 steps more than
    # acknowledged), at most one call's worth per lost call: envs x (steps_per_call + a reset frame)
    acknowledged = sum(steps for _, _, steps in report.chunks)
    stored = store.stats("real").steps
    assert acknowledged <= stored <= acknowledged + report.lost_calls * envs * (steps_per_call + 1), (stored,
                                                                                                     acknowledged)


def test_a_killed_runner_restarts_and_no_acknowledged_chunk_is_lost(local_ray, redis_server):
    cfg = replay_config("redis", url=f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0")
    runners = _runners(local_ray, cfg, count=2)
    pids = local_ray.get([r.pid.remote() for r in runners])
    killed = []

    def kill_the_other_runner_once(report):
        # while one runner's answer is handled, the other has a call in flight: kill that one mid-collection
        if not killed and report.chunks:
            answered = int(report.chunks[-1][0].split("/")[2].removeprefix("r"))
            victim = 1 - answered
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)

    report = collect_env_steps(runners, target_steps=400, steps_per_call=40, on_report=kill_the_other_runner_once)
    assert killed and report.lost_calls >= 1
    assert report.env_steps >= 400
    assert local_ray.get(runners[killed[0]].pid.remote()) != pids[killed[0]]  # restarted in a new process
    store = make_store(cfg)
    try:
        _check_acknowledged_chunks_are_stored(store, report)
        first = [c for c in report.chunks if c[1] == 0]
        chunk = store.get_chunk("real", *first[0][:2])
        assert (chunk.actions[0] == -1).all() and (chunk.actions[1:] >= 0).all()  # reset frame, then actions
        assert len({c[0].split("/")[2] for c in report.chunks}) == 2  # both runners wrote
        assert report.episodes_done >= 4  # 40-step episodes: autoreset works inside the runners
    finally:
        store.close()
        for runner in runners:
            local_ray.kill(runner)
