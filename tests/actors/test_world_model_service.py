"""The world-model service on a real local Ray (CPU, tiny models): concurrent callers each get their own
actions, a weight swap mid-stream changes the version of later calls only, slots are reused after an episode."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from actors.world_model_service import ServiceSpec, WorldModelService
from tests.helpers.acting import DYNAMICS, GENERATION, HEADS, SPACE, TOKENIZER, weights
from tests.imagination.test_acting_service import alone

CALLERS, FRAMES = 4, 8


def start_service(ray, slots: int = CALLERS):
    spec = ServiceSpec(TOKENIZER, DYNAMICS, HEADS, SPACE, GENERATION, slots=slots, max_batch=CALLERS,
                       max_wait_ms=20.0, argmax=True, threads=1)
    service = WorldModelService.remote(spec)
    ray.get(service.set_weights.remote(1, ray.put(weights(seed=0))))  # the models alone() builds
    return service


def play(ray, service, frames, seed: int, calls: list, started: threading.Event | None = None):
    """One episode through the service; appends (submitted, returned, version, action) per call."""
    slot = ray.get(service.open_episode.remote(seed=seed))
    last = np.array([-1])
    for t in range(len(frames)):
        submitted = time.perf_counter()
        action, version, frame = ray.get(service.act.remote(slot, frames[t], last, frame_index=t))
        calls.append((submitted, time.perf_counter(), version, action))
        assert frame == t + 1
        last = action
        if started is not None and t == 2:
            started.set()
    ray.get(service.close_episode.remote(slot))
    return slot


def run_callers(ray, service, frames, started=None):
    calls = [[] for _ in range(CALLERS)]
    threads = [threading.Thread(target=play, args=(ray, service, frames[e], 100 + e, calls[e], started))
               for e in range(CALLERS)]
    for thread in threads:
        thread.start()
    return threads, calls


def test_concurrent_callers_get_their_own_actions_and_slots_are_reused(local_ray, crafter_frames):
    frames = crafter_frames(5, CALLERS * FRAMES).reshape(CALLERS, FRAMES, 64, 64, 3)
    service = start_service(local_ray)
    try:
        threads, calls = run_callers(local_ray, service, frames)
        for thread in threads:
            thread.join(timeout=120)
        for e in range(CALLERS):  # each caller's actions are those its episode gets alone: no mixed slots
            assert len(calls[e]) == FRAMES and {c[2] for c in calls[e]} == {1}
            np.testing.assert_array_equal(np.stack([c[3] for c in calls[e]]), alone(frames[e], noise_seed=100 + e))
        stats = local_ray.get(service.stats.remote())
        assert stats["requests"] == CALLERS * FRAMES and stats["batches"] < stats["requests"]  # it batched
        assert stats["live_episodes"] == 0
        # every slot was freed: the same episodes again reuse slots 0..3 and give the same actions
        again = [[] for _ in range(CALLERS)]
        slots = [play(local_ray, service, frames[e], 100 + e, again[e]) for e in range(CALLERS)]
        assert slots == [0, 0, 0, 0]  # played one after another: the lowest free slot each time
        for e in range(CALLERS):
            np.testing.assert_array_equal(np.stack([c[3] for c in again[e]]), np.stack([c[3] for c in calls[e]]))
        opened = [local_ray.get(service.open_episode.remote()) for _ in range(CALLERS)]
        assert sorted(opened) == list(range(CALLERS))
        with pytest.raises(Exception, match=f"all {CALLERS} KV-cache slots hold live episodes"):
            local_ray.get(service.open_episode.remote())
    finally:
        local_ray.kill(service)


def test_a_weight_swap_mid_stream_changes_the_version_of_later_calls_only(local_ray, crafter_frames):
    frames = crafter_frames(7, CALLERS * FRAMES).reshape(CALLERS, FRAMES, 64, 64, 3)
    service = start_service(local_ray)
    try:
        started = threading.Event()
        threads, calls = run_callers(local_ray, service, frames, started)
        assert started.wait(timeout=120)
        swap_submitted = time.perf_counter()
        assert local_ray.get(service.set_weights.remote(2, local_ray.put(weights(seed=9)))) == 2
        swap_returned = time.perf_counter()
        for thread in threads:
            thread.join(timeout=120)
        every = [c for e in range(CALLERS) for c in calls[e]]
        assert len(every) == CALLERS * FRAMES  # nothing dropped
        for e in range(CALLERS):
            versions = [c[2] for c in calls[e]]
            assert versions == sorted(versions) and set(versions) <= {1, 2}  # never back to the old weights
        assert all(version == 1 for _, returned, version, _ in every if returned < swap_submitted)
        assert all(version == 2 for submitted, _, version, _ in every if submitted > swap_returned)
        assert {c[2] for c in every} == {1, 2}
        with pytest.raises(Exception, match="version 2 is not newer than the loaded version 2"):
            local_ray.get(service.set_weights.remote(2, local_ray.put(weights(seed=9))))
    finally:
        local_ray.kill(service)
