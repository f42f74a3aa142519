"""fragment_to_chunk: consecutive fragments of one episode tile it in the replay step convention."""

import numpy as np
import pytest

from system.data.fragment_chunks import fragment_to_chunk


def _episode(steps: int, rng):
    frames = rng.integers(0, 256, (steps + 1, 4, 4, 3), dtype=np.uint8)
    actions = rng.integers(0, 17, (steps, 1))
    rewards = rng.normal(size=steps).astype(np.float32)
    return frames, actions, rewards


def test_fragments_tile_the_episode_with_reset_frame_first():
    rng = np.random.default_rng(0)
    frames, actions, rewards = _episode(10, rng)
    cuts = [(0, 4), (4, 7), (7, 10)]  # RLlib fragments: frames t0..t1 inclusive, actions t0..t1-1
    chunks = [fragment_to_chunk(frames[a:b + 1], actions[a:b], rewards[a:b], a, terminated=b == 10,
                                is_done=b == 10, episode_id="ep", action_classes=(17,)) for a, b in cuts]
    assert [c.step_offset for c in chunks] == [0, 5, 8]
    assert [c.is_last for c in chunks] == [False, False, True]
    stored = np.concatenate([c.frames for c in chunks])
    np.testing.assert_array_equal(stored, frames)  # 11 frames, none repeated, none missing
    labels = np.concatenate([c.actions for c in chunks])
    assert labels[0, 0] == -1
    np.testing.assert_array_equal(labels[1:], actions)  # step t holds the action that produced frame t
    rew = np.concatenate([c.rewards for c in chunks])
    assert rew[0] == 0 and np.allclose(rew[1:], rewards)
    terminals = np.concatenate([c.terminals for c in chunks])
    assert terminals.tolist() == [False] * 10 + [True]


def test_a_fragment_with_mismatched_lengths_is_refused():
    rng = np.random.default_rng(1)
    frames, actions, rewards = _episode(5, rng)
    with pytest.raises(ValueError, match="want L"):
        fragment_to_chunk(frames[:5], actions, rewards, 0, False, False, "ep", (17,))
