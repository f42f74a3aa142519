"""Synthetic chunks that carry their identity in their content, for the replay tests.

Frame pixels, actions and rewards are functions of the episode id and the step index, so a test can check any
sampled step without knowing how it was stored.
"""

from __future__ import annotations

import zlib

import numpy as np

from system.replay import Chunk

FRAME_SHAPE = (8, 8, 3)
ACTION_DIM = 2


def frame_value(episode_id: str, step) -> np.ndarray:
    return (zlib.crc32(episode_id.encode()) + np.asarray(step)) % 251


def synthetic_chunk(episode_id: str, step_offset: int, length: int, terminal: bool = False,
                    frame_shape=FRAME_SHAPE, task_id: int = -1, action_classes=None) -> Chunk:
    """action_classes=(1000, 1000) bounds the two action components (their values stay below 1000)."""
    steps = np.arange(step_offset, step_offset + length)
    frames = np.broadcast_to(frame_value(episode_id, steps).astype(np.uint8)[:, None, None, None],
                             (length, *frame_shape)).copy()
    actions = np.stack([steps % 1000, np.full(length, zlib.crc32(episode_id.encode()) % 1000)], 1).astype(np.int32)
    rewards = (0.5 * steps).astype(np.float32)
    if step_offset == 0:
        actions[0] = -1  # the first step of an episode has no action and no reward
    terminals = np.zeros(length, bool)
    terminals[-1] = terminal
    return Chunk(frames, actions, rewards, terminals, episode_id, step_offset, task_id=task_id, is_last=terminal,
                 action_classes=action_classes)


def check_batch_content(batch) -> None:
    """Every step of every sequence holds exactly what synthetic_chunk wrote for its (episode, step)."""
    B, T = batch.rewards.shape
    assert batch.frames.shape[:2] == (B, T) and batch.frames.dtype == np.uint8
    assert (np.diff(batch.steps, axis=1) == 1).all(), "steps of a sequence are consecutive"
    for b in range(B):
        episode_id, steps = str(batch.episode_ids[b]), batch.steps[b]
        assert (batch.frames[b] == frame_value(episode_id, steps)[:, None, None, None]).all(), (episode_id, steps)
        assert (batch.rewards[b] == 0.5 * steps).all()
        expected_action = np.where(steps == 0, -1, steps % 1000)
        assert (batch.actions[b, :, 0] == expected_action).all()
