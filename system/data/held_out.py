"""Held-out evaluation clips from Crafter worlds that no training collection visits.

    frames, actions = held_out_windows(cfg.data, clips=16, frames=24, seed=0)

One window of `frames` consecutive steps from each of `clips` episodes collected with data.collect's policy at
collection seed data.collect.seed + HELD_OUT_SEED_OFFSET, at an offset drawn uniformly (seeded by `seed`) from
the episode's possible starts: the clips show the middle of episodes as often as training does, not only the
first frames after a reset. An episode shorter than the window (an early death) gives its first `frames`
frames with the last one held and no-op actions. Out: frames (clips, frames, H, W, 3) uint8 and actions
(clips, frames, A) int32 (step convention: row t holds the action that produced frame t).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from system.data.collect import crafter_sources
from system.data.config import DataConfig
from system.envs.action_space import crafter_action_space

HELD_OUT_SEED_OFFSET = 1_000_003  # held-out worlds: a collection seed no training run uses by default


def held_out_windows(data: DataConfig, clips: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    collect = dataclasses.replace(data.collect, episodes=clips, seed=data.collect.seed + HELD_OUT_SEED_OFFSET,
                                  max_episode_steps=max(frames, data.collect.max_episode_steps))
    rng = np.random.default_rng(seed)
    noop = crafter_action_space().noop()
    out_frames, out_actions = [], []
    for source in crafter_sources(collect, size=data.ingest.size):
        episode = source.read()
        start = int(rng.integers(0, len(episode.frames) - frames + 1)) if len(episode.frames) >= frames else 0
        clip, acts = episode.frames[start:start + frames], episode.actions[start:start + frames]
        if len(clip) < frames:
            missing = frames - len(clip)
            clip = np.concatenate([clip, np.repeat(clip[-1:], missing, axis=0)])
            acts = np.concatenate([acts, np.repeat(noop[None], missing, axis=0)])
        out_frames.append(clip)
        out_actions.append(acts)
    return np.stack(out_frames), np.stack(out_actions)
