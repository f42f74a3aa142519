"""The world-model service on a real local Ray (CPU, tiny models): concurrent callers each get their own
actions, a weight swap mid-stream changes the version of later calls only, slots are reused after an episode;
imagine requests of several callers batch together beside acts, each getting its own rollouts."""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest

from actors.world_model_service import ServiceSpec, WorldModelService
from system.imagination.trajectory import decode_trajectory
from tests.helpers.acting import DYNAMICS, GENERATION, HEADS, SPACE, TOKENIZER, tiny_models, weights
from tests.imagination.test_acting_service import alone
from tests.imagination.test_imagine_service import in_driver

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


def test_imagine_requests_batch_without_mixing_beside_acts_and_carry_their_weights_version(local_ray,
                                                                                          crafter_frames):
    frames = crafter_frames(5, CALLERS * FRAMES).reshape(CALLERS, FRAMES, 64, 64, 3)
    tokenizer, dynamics, heads = tiny_models(seed=0)   # the weights start_service loads
    prior = copy.deepcopy(tiny_models(seed=1)[2].policy)
    service = start_service(local_ray)
    try:
        local_ray.get(service.set_weights.remote(2, local_ray.put({"heads": heads.state_dict(),
                                                                    "prior": prior.state_dict()})))
        # three imagination workers' requests (2 start contexts of 2 frames each) sent together, while an
        # env runner's episode acts through the same service
        rng = np.random.default_rng(0)
        starts = [(frames[w, :4].reshape(2, 2, 64, 64, 3), rng.integers(0, 17, (2, 2, 1))) for w in range(3)]
        acted: list = []
        acting = threading.Thread(target=play, args=(local_ray, service, frames[3], 103, acted))
        acting.start()
        first = [decode_trajectory(data) for data in local_ray.get(
            [service.imagine.remote(c, a, horizon=3, seed=40 + w) for w, (c, a) in enumerate(starts)])]
        acting.join(timeout=120)
        every = local_ray.get(service.stats.remote())
        stats = every["by_kind"]
        assert stats["imagine"]["requests"] == 3 and stats["imagine"]["batches"] < 3   # batched together
        # a piece at a time, acts between: 2 chunks of rows encoded (T0 = 2), the prefill, 3 frames
        assert every["resumed_pieces"] == (2 + 1 + 3) * stats["imagine"]["batches"]
        models = (tokenizer, dynamics, heads, prior)
        for w, (context, actions) in enumerate(starts):   # each worker's rows are its own: what it gets alone
            expected, _ = in_driver(models, context, actions, seed=40 + w)
            assert first[w].policy_version == 2 and np.array_equal(first[w].actions, expected.actions)
            for name in ("agent", "log_probs", "prior_log_probs", "rewards", "values"):
                np.testing.assert_allclose(getattr(first[w], name), getattr(expected, name), atol=1e-5,
                                           err_msg=name)
        np.testing.assert_array_equal(np.stack([c[3] for c in acted]), alone(frames[3], noise_seed=103))

        # a swap mid-stream: calls answered before it was sent keep version 2 and their rollouts, calls sent after
        # it returned get version 3; calls sent together with it (an async actor may run them on either side of
        # it) are wholly one version or the other, never a mix
        def round_():
            return [service.imagine.remote(c, a, horizon=3, seed=40 + w) for w, (c, a) in enumerate(starts)]

        new_heads = tiny_models(seed=9)[2]
        before = [decode_trajectory(d) for d in local_ray.get(round_())]
        swap = service.set_weights.remote(3, local_ray.put({"heads": new_heads.state_dict()}))
        during = round_()
        assert local_ray.get(swap) == 3
        after = [decode_trajectory(d) for d in local_ray.get(round_())]
        during = [decode_trajectory(d) for d in local_ray.get(during)]
        assert [t.policy_version for t in before] == [2, 2, 2] and [t.policy_version for t in after] == [3, 3, 3]
        for w in range(3):
            np.testing.assert_allclose(before[w].agent, first[w].agent, atol=1e-5)
            assert not np.allclose(after[w].log_probs, first[w].log_probs)   # the new policy computed these
            same = {2: first[w], 3: after[w]}[during[w].policy_version]
            np.testing.assert_allclose(during[w].log_probs, same.log_probs, atol=1e-5)
    finally:
        local_ray.kill(service)
