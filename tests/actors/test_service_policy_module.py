"""Env runners acting through the world-model service on a real local Ray (CPU, tiny models, real Crafter).

The service in these tests is the real WorldModelService with a recorder in front of `act` and `open_episode`:
what each request carried (slot, frame index, frame, previous action, the episode's noise seed) and what it
answered, so the tests can hold the stored replay chunks against the requests that produced them."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections import defaultdict

import numpy as np
import pytest
import ray
import torch
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.crafter_env_runner import CrafterEnvRunner, CrafterEnvRunnerShell, EnvRunnerSpec
from actors.world_model_service import ServiceSpec, WorldModelServiceShell
from system.replay import make_store
from system.runtime.collection import collect_env_steps
from tests.conftest import replay_config
from tests.helpers.acting import (DYNAMICS, GENERATION, HEADS, SPACE, TOKENIZER, lone_actions, tiny_models,
                                  weights)


def digest(frame) -> str:
    return hashlib.sha1(np.ascontiguousarray(frame, dtype=np.uint8).tobytes()).hexdigest()


class RecordingServiceShell(WorldModelServiceShell):
    """The world-model service, recording every act: (slot, frame index, frame digest, previous action, episode
    seed, action answered)."""

    def __init__(self, spec):
        super().__init__(spec)
        self.seeds: dict[int, int] = {}
        self.log: list[tuple] = []

    async def open_episode(self, seed=None, owner=None):
        slot = await super().open_episode(seed, owner)
        self.seeds[slot] = seed
        return slot

    async def act(self, slot, obs, last_action, frame_index=None):
        action, version, frame = await super().act(slot, obs, last_action, frame_index)
        self.log.append((slot, frame_index, digest(obs), np.asarray(last_action).tolist(), self.seeds[slot],
                         np.asarray(action).tolist()))
        return action, version, frame

    async def recorded(self) -> list[tuple]:
        return self.log


RecordingService = ray.remote(num_cpus=0)(RecordingServiceShell)


def start_service(slots: int):
    spec = ServiceSpec(TOKENIZER, DYNAMICS, HEADS, SPACE, GENERATION, slots=slots, max_batch=slots,
                       max_wait_ms=5.0, argmax=True, threads=1)
    service = RecordingService.remote(spec)
    ray.get(service.set_weights.remote(1, ray.put(weights(seed=0))))  # the models alone() builds
    return service


@torch.no_grad()
def alone(models, frames: np.ndarray, noise_seed: int) -> np.ndarray:
    """Actions (T, A) of one episode on its own: a batch-1 LiveActor over the service's models with the episode's
    noise generator (tests/imagination/test_acting_service.py's `alone`, with the models built once)."""
    return lone_actions(models, frames, noise_seed)


def served_episodes(log: list[tuple]) -> list[list[tuple]]:
    """The recorded acts split into episodes: a slot's requests from one frame index 0 to the next."""
    current: dict[int, list] = {}
    episodes = []
    for request in log:
        slot, frame_index = request[0], request[1]
        if frame_index == 0:
            current[slot] = []
            episodes.append(current[slot])
        current[slot].append(request)
    return episodes


def stored_episodes(store, chunks) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """episode id -> (frames (T+1, H, W, 3), actions (T+1, A) with -1 at step 0, finished) from the table."""
    parts = defaultdict(list)
    for episode_id, offset, _ in chunks:
        parts[episode_id].append(store.get_chunk("real", episode_id, offset))
    episodes = {}
    for episode_id, got in parts.items():
        got.sort(key=lambda c: c.step_offset)
        assert [c.step_offset for c in got] == list(np.cumsum([0] + [len(c.frames) for c in got[:-1]]))  # tiled
        episodes[episode_id] = (np.concatenate([c.frames for c in got]), np.concatenate([c.actions for c in got]),
                                got[-1].is_last)
    return episodes


@pytest.mark.redis
def test_runners_take_the_services_actions_and_free_slots_at_episode_ends(local_ray, redis_server):
    # two runners sharing the service, one with two sub-envs (rows of one forward must not mix), one with one;
    # few sub-envs because each episode start generates a Crafter world (about a second here)
    envs = (2, 1)
    slots = sum(envs)  # one slot per sub-env: a slot never freed runs out
    service = start_service(slots=slots)
    cfg = replay_config("redis", url=f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0")
    runners = [CrafterEnvRunner.remote(EnvRunnerSpec(index=k, envs=n, max_episode_steps=4, seed=3,
                                                     policy="service", service=service), cfg)
               for k, n in enumerate(envs)]
    try:
        # 3 or 6 steps per sub-env per call: episodes of 4 steps are cut between calls
        report = collect_env_steps(runners, target_steps=24, steps_per_call=6)
        assert report.lost_calls == 0 and report.episodes_done > slots  # more episodes than slots
        log = local_ray.get(service.recorded.remote())
        stats = local_ray.get(service.stats.remote())
        assert stats["live_episodes"] == slots  # the finished episodes' slots came back
        local_ray.get([r.release.remote() for r in runners])
        assert local_ray.get(service.stats.remote())["live_episodes"] == 0
    finally:
        for runner in runners:
            local_ray.kill(runner)
        local_ray.kill(service)

    store = make_store(cfg)
    try:
        stored = stored_episodes(store, report.chunks)
    finally:
        store.close()
    served = served_episodes(log)
    models = tiny_models(seed=0)  # the weights the service loaded
    last_in_slot = {requests[0][0]: k for k, requests in enumerate(served)}  # a slot's final served episode
    used: set[int] = set()
    for episode_id, (frames, actions, finished) in stored.items():
        steps = len(frames) - 1
        # the served episode whose requests are this episode's: the service saw its frames in order, at frame
        # indices 0, 1, ..., with the stored previous actions (-1 first), and answered the stored actions; a
        # finished episode's terminal frame comes once more (RLlib drops that action at the autoreset) when its
        # sub-env steps again, so only a slot's final episode (its runner's last call ended with the done) may
        # lack it
        asked = ([digest(f) for f in frames[:steps]], actions[:steps].tolist(), actions[1:].tolist())
        candidates = [k for k, requests in enumerate(served) if k not in used
                      and ([r[2] for r in requests[:steps]], [r[3] for r in requests[:steps]],
                           [r[5] for r in requests[:steps]]) == asked
                      and [r[1] for r in requests] == list(range(len(requests)))
                      and (len(requests) == steps + 1 and requests[steps][2] == digest(frames[steps])
                           if finished and (len(requests) > steps or last_in_slot[requests[0][0]] != k)
                           else len(requests) == steps)]
        assert candidates, f"no request sequence of the service produced episode {episode_id}"
        # and the actions are those of the service's policy: a single-episode LiveActor over the same models,
        # frames and noise seed reproduces them (Crafter's first frames can repeat across worlds: the seed
        # tells such episodes apart)
        policy = [k for k in candidates
                  if np.array_equal(actions[1:], alone(models, frames[:steps], noise_seed=served[k][0][4]))]
        assert policy, f"episode {episode_id}: the stored actions are not the service policy's"
        used.add(policy[0])
    assert len(used) == len(stored) == len(served)  # one served episode each, none left over
    assert len({a for _, (_, actions, _) in stored.items() for a in actions[1:, 0].tolist()}) > 1  # not vacuous
    assert len({r[4] for r in log}) == len(served)  # every episode its own noise seed


def test_the_episode_state_is_only_the_slot_and_frame_handle(local_ray):
    envs = 2
    service = start_service(slots=envs)
    shell = CrafterEnvRunnerShell(EnvRunnerSpec(index=0, envs=envs, max_episode_steps=5, seed=4, policy="service",
                                                service=service), replay_config("embedded"))
    try:
        fragments = shell.runner.sample(num_timesteps=14) + shell.runner.sample(num_timesteps=6)  # cut episodes
        assert sum(f.is_done for f in fragments) >= 2 * envs  # more episodes than slots
        for fragment in fragments:
            assert set(fragment.extra_model_outputs) == {"state_out", "weights_seq_no"}
            state = fragment.get_extra_model_outputs("state_out")
            assert set(state) == {"slot", "frame"}
            steps = len(fragment)
            for name in ("slot", "frame"):  # one small int per step, no tensor of the cache
                assert isinstance(state[name], np.ndarray) and state[name].shape == (steps,)
                assert np.issubdtype(state[name].dtype, np.integer)
            # the frames the service has seen after each step's action: t + 1 at episode step t
            assert state["frame"].tolist() == list(range(fragment.t_started + 1, fragment.t_started + steps + 1))
            assert len(set(state["slot"].tolist())) == 1 and 0 <= state["slot"][0] < envs
        assert ray.get(service.stats.remote())["live_episodes"] == envs
        shell.release()
        assert ray.get(service.stats.remote())["live_episodes"] == 0
    finally:
        ray.kill(service)


def test_a_restarted_runner_gets_back_the_slots_its_dead_process_held(local_ray):
    envs = 2
    service = start_service(slots=envs)  # no spare slot: the restarted runner needs the dead one's slots
    runner = CrafterEnvRunner.options(max_restarts=-1).remote(
        EnvRunnerSpec(index=0, envs=envs, max_episode_steps=50, seed=5, policy="service", service=service),
        replay_config("embedded"))
    try:
        assert local_ray.get(runner.collect.remote(num_env_steps=4))["env_steps"] >= 4
        assert local_ray.get(service.stats.remote())["live_episodes"] == envs  # mid-episode: both slots taken
        pid = local_ray.get(runner.pid.remote())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while True:  # calls fail until Ray has restarted the actor
            try:
                report = local_ray.get(runner.collect.remote(num_env_steps=4))
                break
            except (ActorUnavailableError, RayActorError):
                assert time.monotonic() < deadline, "the runner did not come back"
                time.sleep(0.5)
        assert report["env_steps"] >= 4 and local_ray.get(runner.pid.remote()) != pid
        assert local_ray.get(service.stats.remote())["live_episodes"] == envs  # the new episodes, no leftovers
    finally:
        local_ray.kill(runner)
        local_ray.kill(service)


def test_the_spec_names_a_policy_and_only_the_service_policy_takes_a_service():
    with pytest.raises(ValueError, match="env runner policy 'scripted'"):
        EnvRunnerSpec(index=0, policy="scripted")
    with pytest.raises(ValueError, match="the service policy needs a WorldModelService handle"):
        EnvRunnerSpec(index=0, policy="service")
    with pytest.raises(ValueError, match="only it takes one"):
        EnvRunnerSpec(index=0, service=object())
