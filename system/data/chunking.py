"""Cutting an Episode into replay Chunks: fixed-length pieces with step offsets, the last marked `is_last`.

    for chunk in split_into_chunks(episode, chunk_length=64, task_id=-1):
        store.add("real", chunk)        # idempotent per (table, episode_id, step_offset)

Chunk k holds steps [k * chunk_length, (k + 1) * chunk_length) of the episode; the last chunk is shorter when
the length does not divide evenly. Offsets depend only on the episode and chunk_length, so re-ingesting an
episode produces the same (episode_id, step_offset) keys and the store recognises what it already holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from system.data.episode import Episode
from system.replay import Chunk


def split_into_chunks(episode: Episode, chunk_length: int, task_id: int = -1,
                      actions: np.ndarray | None = None, action_classes: tuple[int, ...] | None = None) \
        -> Iterator[Chunk]:
    """`actions` replaces episode.actions (e.g. projected into the run's action space); `action_classes`
    (the space's `nvec`) bound them in every chunk, so the store can tell real steps from foreign bytes."""
    if chunk_length < 1:
        raise ValueError("chunk_length must be >= 1")
    actions = episode.actions if actions is None else np.asarray(actions, dtype=np.int32)
    if len(actions) != len(episode):
        raise ValueError(f"episode {episode.episode_id!r}: {len(actions)} action rows for {len(episode)} steps")
    for start in range(0, len(episode), chunk_length):
        end = min(start + chunk_length, len(episode))
        yield Chunk(frames=np.ascontiguousarray(episode.frames[start:end]),
                    actions=np.ascontiguousarray(actions[start:end]),
                    rewards=np.ascontiguousarray(episode.rewards[start:end]),
                    terminals=np.ascontiguousarray(episode.terminals[start:end]),
                    episode_id=episode.episode_id, step_offset=start, task_id=task_id,
                    is_last=end == len(episode), action_classes=action_classes)
