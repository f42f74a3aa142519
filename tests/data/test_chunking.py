"""Episodes cut into replay chunks: offsets, lengths, is_last, and a round trip through the chunk layout."""

import numpy as np

from system.data.chunking import split_into_chunks
from system.data.episode import Episode


def make_episode(steps, terminal=True):
    frames = np.arange(steps, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3)
    actions = np.arange(steps, dtype=np.int32)[:, None].repeat(2, 1)
    actions[0] = -1
    rewards = np.arange(steps, dtype=np.float32)
    terminals = np.zeros(steps, bool)
    terminals[-1] = terminal
    return Episode("ep/1", frames, actions, rewards, terminals)


def test_chunks_tile_the_episode():
    episode = make_episode(150)
    chunks = list(split_into_chunks(episode, 64, task_id=3))
    assert [(c.step_offset, c.length, c.is_last) for c in chunks] == [(0, 64, False), (64, 64, False),
                                                                      (128, 22, True)]
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), episode.frames)
    np.testing.assert_array_equal(np.concatenate([c.actions for c in chunks]), episode.actions)
    np.testing.assert_array_equal(np.concatenate([c.rewards for c in chunks]), episode.rewards)
    assert chunks[-1].terminals[-1] and not any(c.terminals.any() for c in chunks[:-1])
    assert all(c.task_id == 3 and c.episode_id == "ep/1" for c in chunks)


def test_exact_multiple_and_replaced_actions():
    episode = make_episode(128, terminal=False)
    chunks = list(split_into_chunks(episode, 64))
    assert [c.is_last for c in chunks] == [False, True] and not chunks[-1].terminals.any()
    other = np.full((128, 5), 1, np.int32)
    other[0] = -1
    assert list(split_into_chunks(episode, 64, actions=other))[0].actions.shape == (64, 5)


def test_chunks_carry_the_action_bounds_of_the_space():
    episode = make_episode(70)
    chunks = list(split_into_chunks(episode, 64, action_classes=(200, 200)))
    assert all(c.action_classes == (200, 200) for c in chunks)
    assert chunks[0].layout.key() == "4x4x3a2c200,200"
