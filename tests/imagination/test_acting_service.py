"""The acting service without Ray: slots, per-episode results that do not depend on batching, weight versions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from system.imagination.acting_service import ActingService, ActRequest, SlotsExhausted
from tests.helpers.acting import GENERATION, lone_actions, tiny_models, weights
from tests.helpers.dynamics import one_thread  # noqa: F401

FRAMES = 6


def make_service(slots: int = 3, seed: int = 0) -> ActingService:
    tokenizer, dynamics, heads = tiny_models(seed)
    return ActingService(tokenizer, dynamics, heads.policy, GENERATION, slots=slots, argmax=True)


@torch.no_grad()
def alone(frames: np.ndarray, noise_seed: int, seed: int = 0) -> np.ndarray:
    """Actions (T, A) of one episode on its own: a batch-1 LiveActor with the episode's noise generator.
    Each frame's last action is the action taken before it."""
    return lone_actions(tiny_models(seed), frames, noise_seed)


def test_episodes_in_changing_batches_get_the_actions_they_get_alone(crafter_frames):
    frames = crafter_frames(5, 3 * FRAMES).reshape(3, FRAMES, 64, 64, 3)
    service = make_service()
    slots = [service.open_episode(seed=100 + e) for e in range(3)]
    assert slots == [0, 1, 2]
    seen, actions, last = [0, 0, 0], [[], [], []], [np.array([-1])] * 3
    for episodes in ([0, 1, 2], [1], [2, 0], [0], [1, 2], [2, 1, 0], [0, 1], [1, 2, 0], [2], [0, 1, 2], [2, 1]):
        batch = [ActRequest(slots[e], frames[e, seen[e]], last[e]) for e in episodes if seen[e] < FRAMES]
        for request, result in zip(batch, service.act(batch)):
            e = slots.index(request.slot)
            seen[e] += 1
            assert result.frame == seen[e] and result.version == 0
            actions[e].append(result.action)
            last[e] = result.action
    assert seen == [FRAMES] * 3
    for e in range(3):
        np.testing.assert_array_equal(np.stack(actions[e]), alone(frames[e], noise_seed=100 + e))
    assert len({a.tobytes() for e in range(3) for a in actions[e]}) > 1  # the check is not vacuous


def test_slots_are_reused_after_an_episode_ends_and_run_out_with_a_clear_error(crafter_frames):
    frames = crafter_frames(6, FRAMES)
    service = make_service(slots=2)
    first = service.open_episode(seed=1)
    other = service.open_episode()
    with pytest.raises(SlotsExhausted, match="all 2 KV-cache slots"):
        service.open_episode()
    runs = []
    for _ in range(2):  # the same frames twice in the same slot: the second episode starts from a clean slot
        last, got = np.array([-1]), []
        for t in range(FRAMES):
            [result] = service.act([ActRequest(first, frames[t], last)])
            got.append(result.action)
            last = result.action
        runs.append(np.stack(got))
        service.close_episode(first)
        assert service.open_episode(seed=1) == first
    np.testing.assert_array_equal(runs[0], runs[1])
    service.close_episode(other)
    with pytest.raises(ValueError, match=f"slot {other} holds no live episode"):
        service.act([ActRequest(other, frames[0], np.array([-1]))])
    with pytest.raises(ValueError, match="has seen 0 frames of its episode, the request says 3"):
        service.admit(ActRequest(first, frames[0], np.array([-1])), frame=3)


def test_close_owned_frees_only_that_owners_slots():
    service = make_service(slots=3)
    mine = [service.open_episode(owner="r0"), service.open_episode(owner="r0")]
    theirs = service.open_episode(owner="r1")
    service.close_episode(mine[0])  # closed by hand: no longer the owner's
    assert service.close_owned("r0") == 1 and service.close_owned("r0") == 0
    assert service.live_episodes() == 1 and theirs in service.frames
    assert sorted(service.open_episode() for _ in range(2)) == sorted(mine)  # both slots free again


def test_weights_load_by_increasing_version():
    service = make_service()
    assert service.load_weights(1, weights(seed=3)) == 1
    reference, _, _ = tiny_models(seed=3)
    assert all(torch.equal(a, b) for a, b in zip(service.tokenizer.state_dict().values(),
                                                 reference.state_dict().values()))
    with pytest.raises(ValueError, match="version 1 is not newer than the loaded version 1"):
        service.load_weights(1, weights(seed=4))
    # more parts of the loaded version (phase 3's heads and prior beside phase 2's acting weights): only that one
    policy = tiny_models(seed=5)[2].policy.state_dict()
    assert service.load_weights(1, {"policy": policy}, same_version=True) == 1
    assert all(torch.equal(a, b) for a, b in zip(service.policy.state_dict().values(), policy.values()))
    with pytest.raises(ValueError, match="parts for weights version 2 sent as the loaded version 1"):
        service.load_weights(2, {"policy": policy}, same_version=True)
    with pytest.raises(ValueError, match="unknown weight parts \\['heads'\\]"):
        service.load_weights(2, {"heads": {}})
