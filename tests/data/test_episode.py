"""Episode validation (the step convention) and stable, store-safe episode ids."""

import numpy as np
import pytest

from system.data.episode import Episode, make_episode_id
from system.replay.chunk import EPISODE_ID_PATTERN


def episode(steps=3, actions=None, rewards=None):
    actions = np.full((steps, 2), -1, np.int32) if actions is None else actions
    return Episode("e", np.zeros((steps, 8, 8, 3), np.uint8), actions,
                   np.zeros(steps, np.float32) if rewards is None else rewards, np.zeros(steps, bool))


def test_step_zero_is_unlabeled_with_zero_reward():
    assert len(episode()) == 3 and episode().num_transitions == 2
    labelled = np.zeros((3, 2), np.int32)
    with pytest.raises(ValueError, match="step 0"):
        episode(actions=labelled)
    with pytest.raises(ValueError, match="step 0"):
        episode(rewards=np.array([1.0, 0, 0], np.float32))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="frames"):
        Episode("e", np.zeros((3, 8, 8), np.uint8), np.full((3, 1), -1), np.zeros(3), np.zeros(3, bool))
    with pytest.raises(ValueError, match="actions"):
        Episode("e", np.zeros((3, 8, 8, 3), np.uint8), np.full((2, 1), -1), np.zeros(3), np.zeros(3, bool))
    with pytest.raises(ValueError, match="rewards"):
        Episode("e", np.zeros((3, 8, 8, 3), np.uint8), np.full((3, 1), -1), np.zeros(2), np.zeros(3, bool))


def test_episode_ids_are_stable_and_fit_the_store():
    assert make_episode_id("minerl", "MineRLTreechop-v0", "v3_x-1_2-3") == "minerl/MineRLTreechop-v0/v3_x-1_2-3"
    odd = make_episode_id("vpt", "dir with space/ünïcode name")
    assert odd == make_episode_id("vpt", "dir with space/ünïcode name") and EPISODE_ID_PATTERN.fullmatch(odd)
    assert odd != make_episode_id("vpt", "dir_with_space/ünïcode name")   # sanitising never merges two sources
    long = make_episode_id("vpt", "x" * 300)
    assert len(long) <= 128 and EPISODE_ID_PATTERN.fullmatch(long)
    assert long != make_episode_id("vpt", "x" * 301)
